//! The PROXY protocol: Gatehouse behind HAProxy (`send-proxy-v2`) sees the real client
//! address; a v1 header from a trusted address works too, and one from elsewhere is
//! refused; TCP and HTTP upstreams get the header Gatehouse sends, HTTP ones on
//! connections of each client's own.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::Command;

use gatehouse_tests::upstream::{http_upstream, rt};
use gatehouse_tests::{STEP_TIMEOUT, inspecting_client_config, write};
use rustls::pki_types::ServerName;
use support::deploy::{Env, ListenerToml, WAIT, text};
use support::process::Gatehouse;
use support::tools::{output_text, spawn_tool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The portal behind a listener that expects PROXY headers from `trusted`.
fn behind_a_balancer(trusted: &str) -> (Env, Gatehouse) {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let listener = ListenerToml::http(http_upstream("portal"))
        .certificates(&["portal"])
        .set(&format!(
            "proxy_protocol = true\ntrusted_proxies = [\"{trusted}\"]"
        ));
    let g = Gatehouse::start(&env.config(&listener.to_toml()));
    (env, g)
}

/// A free port on loopback, for HAProxy's frontend.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// HAProxy in TCP mode on a new port, sending PROXY v2 headers to `gatehouse`.
fn haproxy(env: &Env, gatehouse: SocketAddr) -> Option<(std::process::Child, u16)> {
    let port = free_port();
    let child = run_haproxy(
        env,
        "tcp",
        &format!(
            "frontend tls\n  bind 127.0.0.1:{port}\n  default_backend gatehouse\n\
             backend gatehouse\n  server gh {gatehouse} send-proxy-v2\n"
        ),
        port,
    )?;
    Some((child, port))
}

/// HAProxy in `mode` with `sections` (frontends, backends), ready once it accepts on `port`.
fn run_haproxy(env: &Env, mode: &str, sections: &str, port: u16) -> Option<std::process::Child> {
    let config = write(
        env.path(),
        "haproxy.cfg",
        format!(
            "global\n  maxconn 100\ndefaults\n  mode {mode}\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n{sections}"
        ),
    );
    let child = spawn_tool(
        Command::new("haproxy").arg("-db").arg("-f").arg(&config),
        "apt-get install haproxy",
    )?;
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < WAIT, "haproxy did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(child)
}

/// `curl` from 127.0.0.2 (a client address HAProxy's own, 127.0.0.1, is not) to `port`.
fn curl_from_127_0_0_2(env: &Env, port: u16) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--interface",
            "127.0.0.2",
            "--cacert",
        ])
        .arg(env.path().join("root.pem"))
        .args(["--resolve", &format!("portal.test:{port}:127.0.0.1")])
        .arg(format!("https://portal.test:{port}/"))
        .output()
        .expect("curl");
    output_text(&out)
}

#[test]
fn behind_haproxy_send_proxy_v2_the_upstream_sees_the_real_client() {
    let (env, g) = behind_a_balancer("127.0.0.1/32");
    let Some((mut haproxy, port)) = haproxy(&env, g.addr("web")) else {
        return;
    };
    let seen = curl_from_127_0_0_2(&env, port);
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    assert!(seen.contains("upstream=portal"), "{seen}");
    assert!(
        seen.contains("x-forwarded-for: 127.0.0.2"),
        "the client's address, not HAProxy's: {seen}"
    );
}

#[test]
fn a_balancer_not_in_trusted_proxies_is_refused() {
    let (env, g) = behind_a_balancer("10.0.0.0/8");
    let Some((mut haproxy, port)) = haproxy(&env, g.addr("web")) else {
        return;
    };
    let seen = curl_from_127_0_0_2(&env, port);
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    assert!(!seen.contains("upstream=portal"), "{seen}");
    let refused = r#"gatehouse_tls_handshakes_total{listener="web",result="proxy_protocol"}"#;
    assert!(g.metric(refused) >= Some(1.0), "{}", g.log_text());
}

/// A TLS request after `header` on one connection; the response, or what failed.
async fn request_after(addr: SocketAddr, header: &[u8]) -> String {
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.write_all(header).await?;
        let connector = tokio_rustls::TlsConnector::from(inspecting_client_config(&[]));
        let name = ServerName::try_from("portal.test").expect("name");
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: portal.test\r\nConnection: close\r\n\r\n")
            .await?;
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&got).into_owned())
    };
    match tokio::time::timeout(STEP_TIMEOUT, exchange).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => format!("failed: {e}"),
        Err(_) => "timed out".into(),
    }
}

#[test]
fn a_v1_header_names_the_client_and_a_missing_one_is_refused() {
    let (_env, g) = behind_a_balancer("127.0.0.0/8");
    let addr = g.addr("web");
    let v1 = rt().block_on(request_after(
        addr,
        b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 443\r\n",
    ));
    assert!(v1.contains("x-forwarded-for: 192.0.2.7"), "{v1}");
    let health_check = rt().block_on(request_after(addr, b"PROXY UNKNOWN\r\n"));
    assert!(
        health_check.contains("x-forwarded-for: 127.0.0.1"),
        "UNKNOWN: the balancer's own connection: {health_check}"
    );
    let none = rt().block_on(request_after(addr, b""));
    assert!(
        !none.contains("HTTP/1.1 200"),
        "no header, no service: {none}"
    );
}

#[test]
fn a_tcp_upstream_gets_the_client_address_in_a_v2_header() {
    // An upstream that parses the header it receives and answers with the source.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream_addr = upstream.local_addr().expect("addr");
    let parsed = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = upstream.accept().expect("accept");
        conn.set_read_timeout(Some(STEP_TIMEOUT)).expect("timeout");
        let mut buf = [0u8; 232];
        let n = conn.read(&mut buf).expect("read the header");
        let answer = match ppp::v2::Header::try_from(&buf[..n]) {
            Ok(h) => format!("{:?}\n", h.addresses),
            Err(e) => format!("not a v2 header: {e}\n"),
        };
        let _ = conn.write_all(answer.as_bytes());
        answer
    });
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let listener = ListenerToml::tcp(upstream_addr)
        .certificates(&["portal"])
        .set("upstream_proxy_protocol = \"v2\"");
    let g = Gatehouse::start(&env.config(&listener.to_toml()));
    let addr = g.addr("web");
    let client_port = rt().block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let port = tcp.local_addr().expect("local").port();
        let connector = tokio_rustls::TlsConnector::from(inspecting_client_config(&[]));
        let name = ServerName::try_from("portal.test").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        let mut got = Vec::new();
        let _ = tokio::time::timeout(STEP_TIMEOUT, tls.read_to_end(&mut got)).await;
        port
    });
    let answer = parsed.join().expect("upstream");
    assert!(
        answer.contains("source_address: 127.0.0.1")
            && answer.contains(&format!("source_port: {client_port}"))
            && answer.contains(&format!("destination_port: {}", addr.port())),
        "{answer}"
    );
}

/// HAProxy as two HTTP upstreams that take a PROXY header (`accept-proxy`), plain and TLS,
/// each answering with the client address the header named: `client=ADDRESS:PORT`.
fn haproxy_upstreams(env: &mut Env) -> Option<(std::process::Child, u16, u16)> {
    env.issue("upstream", &["upstream.test"]);
    let dir = env.path();
    let pem = [
        std::fs::read_to_string(dir.join("upstream.crt")).expect("crt"),
        std::fs::read_to_string(dir.join("upstream.chain.pem")).expect("chain"),
        std::fs::read_to_string(dir.join("upstream.key")).expect("key"),
    ]
    .concat();
    let pem = write(dir, "upstream.haproxy.pem", pem);
    let (plain, tls) = (free_port(), free_port());
    let answer = "http-request return status 200 content-type text/plain lf-string \"client=%[src]:%[src_port]\"";
    let sections = format!(
        "frontend plain\n  bind 127.0.0.1:{plain} accept-proxy\n  {answer}\n\
         frontend tls\n  bind 127.0.0.1:{tls} accept-proxy ssl crt {} alpn h2,http/1.1\n  {answer}\n",
        pem.display()
    );
    let child = run_haproxy(env, "http", &sections, tls)?;
    Some((child, plain, tls))
}

/// The `client=` lines and the local ports curl printed (`-w "|%{local_port}"`), paired.
fn seen_and_own_ports(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| {
            let (body, port) = line.split_once('|')?;
            let seen = body.rsplit_once(':')?.1;
            Some((seen.to_owned(), port.to_owned()))
        })
        .collect()
}

#[test]
fn http_upstreams_get_each_clients_address_in_a_proxy_header_on_connections_of_its_own() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test", "secure.test"]);
    let Some((mut haproxy, plain, tls)) = haproxy_upstreams(&mut env) else {
        return;
    };
    let listener = ListenerToml::http(SocketAddr::from(([127, 0, 0, 1], plain)))
        .certificates(&["portal"])
        .set("upstream_proxy_protocol = \"v1\"")
        .to_toml()
        + &format!(
            "[[listener.route]]\nserver_name = \"secure.test\"\nupstream = \"https://127.0.0.1:{tls}\"\n\
             upstream_server_name = \"upstream.test\"\nupstream_ca_file = \"root.pem\"\n\
             upstream_proxy_protocol = \"v2\"\n"
        );
    let g = Gatehouse::start(&env.config(&listener));
    let addr = g.addr("web");
    let mut runs = Vec::new();
    // One client after another, each with two requests on one connection (HTTP/1.1, then
    // HTTP/2): were the upstream connections shared, a later client would be sent on one
    // that named an earlier client.
    for (host, http) in [
        ("portal.test", "--http1.1"),
        ("portal.test", "--http1.1"),
        ("portal.test", "--http2"),
        ("secure.test", "--http1.1"),
        ("secure.test", "--http2"),
        ("secure.test", "--http2"),
    ] {
        let again = format!("https://{host}:{}/again", addr.port());
        let out = env.curl(addr, host, "/", &[http, "-w", "|%{local_port}\n", &again]);
        runs.push((host, http, text(&out)));
    }
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    for (host, http, out) in runs {
        let pairs = seen_and_own_ports(&out);
        assert_eq!(pairs.len(), 2, "{host} {http}: two answers: {out}");
        for (seen, own) in pairs {
            assert_eq!(
                seen, own,
                "{host} {http}: the upstream is told this client's address: {out}"
            );
        }
    }
}
