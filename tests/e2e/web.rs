//! The web UI in a real headless Chromium (Debian's `chromium`, driven by Playwright) against a
//! real `vigil serve` holding the demo's data, on both stores: `ui-api/web/e2e/browser.mjs` signs
//! in, compares what the pages show with what the API answers, and checks that run content is
//! only ever text. Screenshots are written to `target/ui-screenshots/<store>/`.

use crate::support;

use std::{path::PathBuf, process::Command};

use support::{Store, Vigil, conformance};
use vigil_proto::v1;

/// What a span and a run say when someone tries to run script in the UI.
const XSS: &str = "<img src=x onerror=alert(1)>";
/// The raw id of the person who sent it: looked up, then erased, in the browser.
const XSS_PERSON: &str = "person-who-tried-xss";

async fn the_web_ui_shows_what_the_api_answers(store: Store) {
    let vigil = Vigil::start_on(store);
    conformance::send_demo(&vigil, 11, 40).await;
    let now = vigil_schemas::time::now_ns();
    let trace_id = "0123456789abcdef0123456789abcdef";
    let response = vigil
        .export_native(v1::ExportRequest {
            runs: vec![v1::Run {
                trace_id: trace_id.into(),
                agent_name: "xss-agent".into(),
                user_id: XSS_PERSON.into(),
                input: XSS.into(),
                output: XSS.into(),
                start_time_unix_nano: now - 2_000_000_000,
                end_time_unix_nano: now - 1_000_000_000,
                ..Default::default()
            }],
            spans: vec![v1::Span {
                trace_id: trace_id.into(),
                span_id: "0123456789abcdef".into(),
                name: XSS.into(),
                input: XSS.into(),
                output: XSS.into(),
                start_time_unix_nano: now - 2_000_000_000,
                end_time_unix_nano: now - 1_000_000_000,
                ..Default::default()
            }],
            ..Default::default()
        })
        .await;
    assert!(response.rejections.is_empty(), "{response:?}");
    conformance::wait_drained(&vigil).await;

    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ui-api/web");
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/ui-screenshots")
        .join(format!("{store:?}").to_lowercase());
    let output = Command::new("node")
        .arg("e2e/browser.mjs")
        .current_dir(&web)
        .env("VIGIL_URL", vigil.http())
        .env("VIGIL_KEY", &vigil.token)
        .env("VIGIL_XSS_TRACE", trace_id)
        .env("VIGIL_XSS_PERSON", XSS_PERSON)
        .env("VIGIL_SHOTS", &shots)
        .output()
        .expect("node runs");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser tests failed ({})\n{out}\n{err}\nscreenshots: {}",
        output.status,
        shots.display()
    );
    assert!(out.contains("browser tests passed"), "{out}");
}

on_both_stores!(the_web_ui_shows_what_the_api_answers,);
