//! Descriptor exhaustion: the gateway runs as a child under a low `ulimit -n`, is driven
//! past EMFILE, keeps serving the connections it has, and accepts again once descriptors
//! free up.

mod util;

use util::{get, send_poll, wait_until, ChildGateway, Conn};

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

#[test]
fn running_out_of_descriptors_pauses_accepting_until_some_free_up() {
    let mut gw = ChildGateway::spawn(Some(40), &[]);
    let (public, admin) = (gw.public, gw.admin);
    // A message to poll for, published while descriptors remain.
    let r = util::request(
        admin,
        "POST /pub?channel=fd HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(r.status, 200);
    // Far more connections than the server has descriptors; the rest wait in the backlog.
    let mut conns: Vec<Conn> = (0..80).map(|_| Conn::open(public)).collect();
    for c in &mut conns {
        send_poll(c, "channel=fd&seq=0");
    }
    wait_until("the gateway reports EMFILE", || gw.logged("accept paused"));
    // It keeps serving the connections it already has.
    let r = conns[0].response();
    assert_eq!(r.status, 200);
    assert_eq!(r.events()[0]["data"], "x");
    // While starved it must not spin: show the CPU it used over a second.
    let before = cpu_ticks(gw.pid());
    std::thread::sleep(std::time::Duration::from_secs(1));
    let used = cpu_ticks(gw.pid()) - before;
    eprintln!("gateway CPU while out of descriptors: {used} ticks in 1 s");
    assert!(gw.child.try_wait().unwrap().is_none(), "gateway died");
    // Descriptors free up: it accepts again, on both listeners.
    drop(conns);
    wait_until("admin listener serves again", || {
        get(admin, "/healthz").status == 200
    });
    let r = get(public, "/poll?channel=fd&seq=0");
    assert_eq!(r.status, 200);
    // The log is read from the child's stderr on another thread.
    wait_until("resumption logged", || gw.logged("accept resumed"));
    assert!(gw.child.try_wait().unwrap().is_none(), "gateway died");
}
