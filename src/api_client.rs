//! The HTTP client of the commands that talk to a running Vigil (`vigil metrics`, `vigil
//! datasets`, `vigil eval`, `vigil kill-switch`): where it listens, which key to send, and one error message per failed answer.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use vigil_workload::demo::KeyArgs;

/// Where `vigil serve` listens for HTTP by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:4318";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of one request; long ranges over the embedded store take a while.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Characters of a non-JSON error body quoted in the message.
const MAX_QUOTED_BODY: usize = 300;

/// Where the API is and the key to call it with.
#[derive(clap::Args, Debug, Clone)]
pub struct ApiArgs {
    /// Base URL of Vigil's HTTP API.
    #[arg(long, env = "VIGIL_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// API key (Bearer token).
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the key, read when no token is given.
    #[arg(long, default_value = "vigil-data/bootstrap.key")]
    pub token_file: PathBuf,
}

/// A client of one Vigil's API with one key.
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(args: &ApiArgs) -> anyhow::Result<ApiClient> {
        let token = KeyArgs {
            token: args.token.clone(),
            token_file: args.token_file.clone(),
        }
        .resolve()?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(ApiClient {
            base: args.url.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(reqwest::Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(reqwest::Method::DELETE, path, None::<&()>).await
    }

    /// One request; an error answer becomes its message ([`server_error`]).
    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        let response = request.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                format!(
                    "{url} did not answer within {} s",
                    REQUEST_TIMEOUT.as_secs()
                )
            } else {
                format!("cannot reach {url}")
            };
            anyhow::Error::new(e).context(what)
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        if !status.is_success() {
            let mut message = server_error(status.as_u16(), &text);
            if status == reqwest::StatusCode::UNAUTHORIZED && self.token.is_empty() {
                message.push_str(
                    " (no API key found: pass --token, set VIGIL_TOKEN or point --token-file at a key file)",
                );
            }
            return Err(anyhow!(message));
        }
        serde_json::from_str(&text).with_context(|| format!("{url} answered with unexpected JSON"))
    }
}

/// The message of an error answer: `<field>: <message>` from Vigil's JSON error body (once: the
/// message may already start with its field), else the status and the start of the body.
pub fn server_error(status: u16, body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    struct ErrorDetail {
        message: String,
        #[serde(default)]
        field: Option<String>,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody {
            error:
                ErrorDetail {
                    message,
                    field: Some(field),
                },
        }) if !field.is_empty() && !message.starts_with(&format!("{field}:")) => {
            format!("{field}: {message}")
        }
        Ok(ErrorBody { error }) => error.message,
        Err(_) => {
            let text: String = body.trim().chars().take(MAX_QUOTED_BODY).collect();
            if text.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {text}")
            }
        }
    }
}

/// Runs a command's body: a failure is printed as `error: …` and ends the process with
/// status 1.
pub async fn exit_on_error(body: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    if let Err(e) = body.await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// `header` and `rows` as left-aligned columns two spaces apart, a line each.
pub fn aligned<const N: usize>(header: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in std::iter::once(header).chain(rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Writes `output` to stdout; a reader that closed the pipe early (`… | head`) is no failure.
pub fn print(output: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing stdout"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_name_the_field() {
        let body = r#"{"error":{"code":"invalid_argument","message":"unknown metric \"x\"","field":"metrics"}}"#;
        assert_eq!(server_error(400, body), "metrics: unknown metric \"x\"");
        // The query engine's messages already name their field.
        let body = r#"{"error":{"code":"invalid_argument","message":"to: must be after from","field":"to"}}"#;
        assert_eq!(server_error(400, body), "to: must be after from");
        let body =
            r#"{"error":{"code":"unauthenticated","message":"missing API key","field":null}}"#;
        assert_eq!(server_error(401, body), "missing API key");
        assert_eq!(server_error(502, "Bad Gateway\n"), "HTTP 502: Bad Gateway");
        assert_eq!(server_error(500, ""), "HTTP 500");
    }
}
