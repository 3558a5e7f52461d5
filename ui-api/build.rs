//! Builds the web UI (`web/`, TypeScript) with npm and embeds it: `$OUT_DIR/web_assets.rs` lists
//! every file of the bundle with its content type, included as bytes. Without npm the binary
//! gets a one-page placeholder that says how to get the UI, and everything else works as before.
//! `VIGIL_SKIP_WEB=1` skips the npm build on purpose (the same placeholder).

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

const WATCHED: [&str; 7] = [
    "web/src",
    "web/index.html",
    "web/package.json",
    "web/package-lock.json",
    "web/vite.config.ts",
    "web/tsconfig.json",
    "openapi.json",
];

fn main() {
    for path in WATCHED {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=VIGIL_SKIP_WEB");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dist = out.join("web");
    let _ = fs::remove_dir_all(&dist);
    fs::create_dir_all(&dist).expect("creating the web output directory");
    let built = if env::var_os("VIGIL_SKIP_WEB").is_some() {
        println!("cargo:warning=VIGIL_SKIP_WEB is set: the web UI is not built");
        false
    } else if Command::new("npm").arg("--version").output().is_err() {
        println!("cargo:warning=npm was not found: the web UI is not built (the API works)");
        false
    } else {
        build(&dist);
        true
    };
    if !built {
        fs::write(dist.join("index.html"), PLACEHOLDER).expect("writing the placeholder page");
    }
    write_manifest(&dist, &out.join("web_assets.rs"), built);
}

/// `npm ci` when the lockfile changed since the last install, then the production build into
/// `dist`. A failure fails the cargo build: a binary never ships a broken UI silently.
fn build(dist: &Path) {
    let web = Path::new("web");
    let installed = web.join("node_modules/.package-lock.json");
    let stale = match (
        fs::metadata(&installed),
        fs::metadata(web.join("package-lock.json")),
    ) {
        (Ok(installed), Ok(lock)) => installed.modified().ok() < lock.modified().ok(),
        _ => true,
    };
    if stale {
        run(web, &["ci", "--no-audit", "--no-fund"]);
    }
    let out_dir = dist.to_str().expect("OUT_DIR is UTF-8");
    run(
        web,
        &["run", "build", "--", "--outDir", out_dir, "--emptyOutDir"],
    );
}

fn run(dir: &Path, args: &[&str]) {
    let status = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| panic!("npm {}: {e}", args.join(" ")));
    assert!(status.success(), "npm {} failed: {status}", args.join(" "));
}

/// `pub static WEB_ASSETS: &[WebAsset]` and `pub const WEB_UI_BUILT: bool`.
fn write_manifest(dist: &Path, manifest: &Path, built: bool) {
    let mut files = Vec::new();
    collect(dist, dist, &mut files);
    files.sort();
    let mut code = format!("pub const WEB_UI_BUILT: bool = {built};\n");
    code.push_str("pub static WEB_ASSETS: &[WebAsset] = &[\n");
    for (path, file) in files {
        code.push_str(&format!(
            "    WebAsset {{ path: {path:?}, content_type: {:?}, bytes: include_bytes!({:?}) }},\n",
            content_type(&path),
            file.display().to_string(),
        ));
    }
    code.push_str("];\n");
    fs::write(manifest, code).expect("writing the web asset manifest");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in fs::read_dir(dir).expect("reading the web bundle") {
        let path = entry.expect("reading the web bundle").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("a file of the bundle");
            let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
            files.push((url, path));
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

const PLACEHOLDER: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vigil</title></head>
<body>
<h1>Vigil</h1>
<p>This binary was built without its web UI: Node.js and npm were not found when it was built
(or <code>VIGIL_SKIP_WEB</code> was set). Everything else works: the REST API is at
<code>/api/v1</code> (its OpenAPI document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>).
To get the UI, install Node.js 20 or later with npm and build again.</p>
</body></html>
"#;
