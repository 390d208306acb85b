//! Logging: `--access-log` writes one line per request (listener, method, path, status or
//! parked/stream), and no token or secret ever reaches the log, whether it came in the
//! query, in a header or on the command line.

mod util;

use util::{get, request, ChildGateway};

#[test]
fn the_access_log_records_requests_and_never_a_secret() {
    let gw = ChildGateway::spawn(
        None,
        &[
            "--access-log",
            "--auth-secret",
            "SUPERSECRET1",
            "--admin-token",
            "ADMINTOKEN2",
            "--poll-timeout",
            "200ms",
        ],
    );
    let signed = request(
        gw.admin,
        "POST /sign?channel=news&ttl=60 HTTP/1.1\r\nAuthorization: Bearer ADMINTOKEN2\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(signed.status, 200);
    let token = signed.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        get(gw.public, &format!("/poll?channel=news&token={token}")).status,
        200
    );
    assert_eq!(
        get(gw.public, "/poll?channel=news&token=forged~1~x").status,
        403
    );
    assert_eq!(
        request(
            gw.admin,
            "GET /stats HTTP/1.1\r\nAuthorization: Bearer WRONG3\r\n\r\n"
        )
        .status,
        401
    );
    util::wait_until("the access lines", || {
        gw.logged("public Get /poll parked")
            && gw.logged("public Get /poll 403")
            && gw.logged("admin Get /stats 401")
    });
    assert!(gw.logged("admin Post /sign 200"));
    for secret in [
        "SUPERSECRET1",
        "ADMINTOKEN2",
        "WRONG3",
        token.as_str(),
        "forged~1~x",
        "token=",
    ] {
        assert!(!gw.logged(secret), "{secret:?} reached the log");
    }
}
