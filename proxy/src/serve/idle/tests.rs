//! The idle, header and send timeouts, driven with tokio's paused clock.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

/// idle_timeout 60 s, send_timeout 30 s.
fn limits(header: Option<Duration>, bytes_are_activity: bool) -> Limits {
    Limits {
        idle: secs(60),
        header,
        send: secs(30),
        bytes_are_activity,
    }
}

#[tokio::test(start_paused = true)]
async fn idle_connection_times_out_but_not_while_a_request_is_in_flight() {
    let (client, server) = duplex(64);
    let in_flight = Arc::new(InFlight::default());
    let mut io = IdleTimeout::new(server, limits(None, true), in_flight.clone());
    let mut client = client;
    client.write_all(b"x").await.unwrap();
    let mut buf = [0u8; 1];
    io.read_exact(&mut buf).await.unwrap();

    let guard = in_flight.enter();
    let waited = tokio::time::timeout(Duration::from_secs(300), io.read(&mut buf)).await;
    assert!(waited.is_err(), "no timeout while a request is in flight");
    drop(guard);

    let started = Instant::now();
    let err = io
        .read(&mut buf)
        .await
        .expect_err("idle connection must time out");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_secs(60) && idle <= Duration::from_secs(90),
        "closed after {idle:?}"
    );
}

/// An HTTP/1.1 connection's stream: idle_timeout 60 s, header_timeout 10 s.
fn http1() -> (
    tokio::io::DuplexStream,
    IdleTimeout<tokio::io::DuplexStream>,
    Arc<InFlight>,
) {
    let (client, server) = duplex(64);
    let in_flight = Arc::new(InFlight::default());
    let io = IdleTimeout::new(server, limits(Some(secs(10)), true), in_flight.clone());
    (client, io, in_flight)
}

/// Reads until the stream fails, which must be a timeout; returns how long it took.
async fn time_until_timeout<S: AsyncRead + Unpin>(io: &mut S) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let timed_out = async {
        loop {
            match io.read(&mut buf).await {
                Ok(0) => panic!("the peer closed first"),
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                    return;
                }
            }
        }
    };
    // Bounded: a clock that never fires would otherwise wait forever (paused time only
    // jumps to timers that exist).
    tokio::time::timeout(Duration::from_secs(3600), timed_out)
        .await
        .expect("the connection times out within an hour");
    started.elapsed()
}

/// A one-byte request head from the client, read by the server: its request enters
/// flight until the guard is dropped.
async fn one_head(
    client: &mut tokio::io::DuplexStream,
    io: &mut IdleTimeout<tokio::io::DuplexStream>,
    in_flight: &Arc<InFlight>,
) -> InFlightGuard {
    let mut buf = [0u8; 1];
    client.write_all(b"x").await.unwrap();
    io.read_exact(&mut buf).await.unwrap();
    in_flight.enter()
}

/// Writes one byte every `gap`, `count` times, then stays open.
fn trickle(mut client: tokio::io::DuplexStream, gap: Duration, count: usize) {
    tokio::spawn(async move {
        for _ in 0..count {
            if client.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn a_request_head_trickling_in_is_cut_at_the_header_timeout() {
    let (client, mut io, _in_flight) = http1();
    trickle(client, secs(1), 1000);
    let took = time_until_timeout(&mut io).await;
    assert!(
        took >= secs(10) && took <= secs(16),
        "a head still arriving after header_timeout is cut, bytes or not: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn between_requests_only_the_idle_timeout_applies() {
    let (mut client, mut io, in_flight) = http1();
    // The head is complete: its request runs for 20 s, then the connection waits.
    let guard = one_head(&mut client, &mut io, &in_flight).await;
    tokio::time::sleep(secs(20)).await;
    drop(guard);
    let took = time_until_timeout(&mut io).await;
    assert!(
        took >= secs(60) && took <= secs(66),
        "a keep-alive connection waits idle_timeout for its next request, not header_timeout: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn each_request_head_gets_its_own_header_timeout() {
    let (mut client, mut io, in_flight) = http1();
    // Requests every 7 s for a minute: each head arrives at once.
    for _ in 0..9 {
        drop(one_head(&mut client, &mut io, &in_flight).await);
        tokio::time::sleep(secs(7)).await;
    }
    // Then a head that never completes.
    trickle(client, secs(1), 1000);
    let took = time_until_timeout(&mut io).await;
    assert!(
        took >= secs(10) && took <= secs(16),
        "the unfinished head is cut after header_timeout of its own: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_upgraded_connection_has_no_header_timeout() {
    let (client, mut io, in_flight) = http1();
    in_flight.upgraded();
    trickle(client, secs(1), 100);
    let took = time_until_timeout(&mut io).await;
    assert!(
        took >= secs(160),
        "WebSocket traffic keeps it open; only silence (idle_timeout) ends it: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_cut_at_the_send_timeout() {
    let (client, server) = duplex(64);
    let in_flight = Arc::new(InFlight::default());
    let mut io = IdleTimeout::new(server, limits(None, true), in_flight.clone());
    let _busy = in_flight.enter();
    let started = Instant::now();
    let chunk = [b'x'; 64];
    let err = tokio::time::timeout(secs(3600), async {
        loop {
            if let Err(e) = io.write(&chunk).await {
                return e;
            }
        }
    })
    .await
    .expect("the write fails within an hour");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    let took = started.elapsed();
    assert!(
        took >= secs(30) && took <= secs(46),
        "a write blocked on a client that reads nothing ends at send_timeout: {took:?}"
    );
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn a_response_the_client_does_not_take_is_cut_even_with_no_write_pending() {
    // HTTP/2 with the client's window shut: nothing to write, the body waits.
    let (_client, server) = duplex(64);
    let in_flight = Arc::new(InFlight::default());
    let mut io = IdleTimeout::new(server, limits(None, false), in_flight.clone());
    let busy = in_flight.enter();
    busy.waiting_for_client(true);
    let took = time_until_timeout(&mut io).await;
    assert!(
        took >= secs(30) && took <= secs(46),
        "a response waiting for the client is cut at send_timeout: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_the_client_keeps_taking_is_never_cut() {
    let (_client, server) = duplex(64);
    let in_flight = Arc::new(InFlight::default());
    let mut io = IdleTimeout::new(server, limits(None, false), in_flight.clone());
    let busy = in_flight.enter();
    busy.waiting_for_client(true);
    let mut buf = [0u8; 1];
    let taking = async {
        loop {
            tokio::time::sleep(secs(5)).await;
            busy.sent();
        }
    };
    tokio::select! {
        r = io.read(&mut buf) => panic!("the connection ended: {r:?}"),
        _ = tokio::time::sleep(secs(600)) => {}
        _ = taking => {}
    }
}

#[tokio::test(start_paused = true)]
async fn on_http2_bytes_alone_do_not_keep_a_connection_open() {
    // PINGs every second and no stream: idle all the same.
    let (client, server) = duplex(64);
    let mut io = IdleTimeout::new(server, limits(None, false), Arc::new(InFlight::default()));
    trickle(client, secs(1), 1000);
    let took = time_until_timeout(&mut io).await;
    assert!(
        took >= secs(60) && took <= secs(76),
        "control frames are not activity: closed at idle_timeout: {took:?}"
    );
}
