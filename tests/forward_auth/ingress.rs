//! A real front proxy (nginx or Caddy from the distribution) run for one test: its files in a
//! temporary directory, listening on a free port of 127.0.0.1, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Ingress {
    pub port: u16,
    pub dir: TempDir,
    child: Child,
}

impl Ingress {
    /// Starts `program` with `args` (`{dir}` replaced by the temporary directory) after writing
    /// `files` there (`{dir}` and `{port}` replaced in their text), and waits until the port
    /// accepts connections.
    pub fn start(program: &str, args: &[&str], files: &[(&str, String)]) -> Ingress {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::support::free_port();
        let d = dir.path().display().to_string();
        for (name, text) in files {
            let text = text
                .replace("{dir}", &d)
                .replace("{port}", &port.to_string());
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &d)).collect();
        let child = Command::new(program)
            .args(&args)
            .env("HOME", &d)
            .env("XDG_DATA_HOME", &d)
            .env("XDG_CONFIG_HOME", &d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} could not start ({e}): is it installed?"));
        let mut ingress = Ingress { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = ingress.child.try_wait() {
                panic!("{program} exited ({status}): {}", ingress.log());
            }
            assert!(
                Instant::now() < deadline,
                "{program} did not listen: {}",
                ingress.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ingress
    }

    pub fn log(&self) -> String {
        let mut out = String::new();
        for name in ["stderr.log", "error.log"] {
            if let Ok(t) = std::fs::read_to_string(self.dir.path().join(name)) {
                out.push_str(&t);
            }
        }
        out
    }

    /// A client that sends every request to the ingress, whatever the URL's host.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(
                crate::support::signin::HOST,
                ([127, 0, 0, 1], self.port).into(),
            )
            .build()
            .unwrap()
    }

    /// What every ingress must get right, checked through it with a signed-in `cookie`: the
    /// app (`app`) answers with the identity from Portcullis, never the client's own copies;
    /// the route's policy refuses with 403; a public route passes without a session.
    pub async fn assert_gate(&self, cookie: &str, app: &str) {
        use crate::support::signin::GROUP_ADMINS;
        let http = self.client();
        let r = http
            .get(self.url("/docs/a?x=1"))
            .header("cookie", cookie)
            .header("x-auth-request-user", "mallory")
            .header("x-auth-request-groups", GROUP_ADMINS)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", self.log());
        let echo = crate::support::echo_json(r).await;
        assert_eq!(echo["upstream"], app, "{echo}");
        assert_eq!(
            crate::support::seen(&echo, "x-auth-request-user"),
            ["alice@contoso.example"]
        );
        let groups = crate::support::seen(&echo, "x-auth-request-groups");
        assert!(
            groups.len() == 1 && !groups[0].contains(GROUP_ADMINS),
            "{groups:?}"
        );
        let r = http
            .get(self.url("/admin/x"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "the route's policy");
        let r = http.get(self.url("/public/x")).send().await.unwrap();
        assert_eq!(r.status(), 200, "a public route");
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://{}:{}{path}",
            crate::support::signin::HOST,
            self.port
        )
    }
}

impl Drop for Ingress {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
