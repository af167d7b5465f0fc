//! What `jmessage-mock proxy` adds per frame: the latency of one request round trip
//! (`s_across_single_text`: request → ack → response, while the receiver gets its
//! `msg_sync`) and the process CPU time per message, through the proxy vs straight to the
//! same server, in alternating rounds of the same run. All on 127.0.0.1.
//!
//! `cargo bench --bench proxy` for the full run (bounded to 50 s); without `--bench` (as
//! `cargo test --all-targets` runs it) one tiny round.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use jmessage_mock::client::{Client, ClientConfig, Transport};
use jmessage_mock::proxy::{self, ProxyConfig};
use std::time::{Duration, Instant};

/// Process CPU time (user + system) so far.
fn cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

async fn logged_in(url: &str, name: &str) -> Client {
    let c = Client::connect(
        url,
        ClientConfig {
            transport: Transport::Websocket,
            ..common::fast()
        },
    )
    .await
    .expect("connect");
    c.init(common::APPKEY, common::SECRET, 0)
        .await
        .expect("init")
        .ok()
        .expect("init ok");
    let r = c.register(name, "pw").await.expect("register");
    assert!(r.code() == 0 || r.code() == 898001);
    c.login(name, "pw")
        .await
        .expect("login")
        .ok()
        .expect("login ok");
    c
}

/// Sends `n` messages one after the other; per-message latencies (µs) and CPU per message.
async fn round(url: &str, from: &str, to: &str, n: usize) -> (Vec<f64>, Duration) {
    let a = logged_in(url, from).await;
    let b = logged_in(url, to).await;
    let mut lat = Vec::with_capacity(n);
    let c0 = cpu();
    for i in 0..n {
        let t = Instant::now();
        let r = a
            .send_text(from, to, &format!("bench {i}"))
            .await
            .expect("reply");
        assert_eq!(r.code(), 0);
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        b.expect_push("msg_sync", common::WAIT)
            .await
            .expect("delivered");
    }
    let per = (cpu() - c0) / n.max(1) as u32;
    a.disconnect();
    b.disconnect();
    (lat, per)
}

async fn bench(full: bool) {
    let (rounds, n) = if full { (5, 200) } else { (1, 5) };
    let up = common::start().await;
    let p = proxy::start(
        ProxyConfig::new(up.ws_url()),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("proxy");
    let (mut direct, mut via) = (Vec::new(), Vec::new());
    let (mut cpu_direct, mut cpu_via) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let (l, c) = round(
            &up.http_url(),
            &format!("direct{r}a"),
            &format!("direct{r}b"),
            n,
        )
        .await;
        direct.extend(l);
        cpu_direct.push(c.as_secs_f64() * 1e6);
        let (l, c) = round(
            &p.http_url(),
            &format!("viaproxy{r}a"),
            &format!("viaproxy{r}b"),
            n,
        )
        .await;
        via.extend(l);
        cpu_via.push(c.as_secs_f64() * 1e6);
    }
    let (d50, v50) = (support::median(&mut direct), support::median(&mut via));
    let (d95, v95) = (
        support::percentile(&mut direct, 95.0),
        support::percentile(&mut via, 95.0),
    );
    let (dc, vc) = (
        support::median(&mut cpu_direct),
        support::median(&mut cpu_via),
    );
    println!(
        "proxy overhead, {} messages per path ({rounds} alternating rounds):",
        rounds * n
    );
    println!(
        "  latency p50: direct {d50:.0} µs, via proxy {v50:.0} µs, ratio {:.2}",
        v50 / d50.max(1.0)
    );
    println!(
        "  latency p95: direct {d95:.0} µs, via proxy {v95:.0} µs, ratio {:.2}",
        v95 / d95.max(1.0)
    );
    println!(
        "  CPU/message (whole process): direct {dc:.0} µs, via proxy {vc:.0} µs, ratio {:.2}",
        vc / dc.max(1.0)
    );
    p.shutdown().await.expect("proxy stops");
    up.shutdown().await;
}

fn main() {
    let full = support::full_mode();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let limit = if full { 50 } else { 20 };
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(limit), bench(full))
            .await
            .expect("benchmark exceeded its time bound")
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}
