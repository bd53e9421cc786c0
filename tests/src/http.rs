//! A loopback HTTP GET for the metrics endpoint.
use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
};

use crate::TestDaemon;

/// A loopback port nothing listens on right now.
#[must_use]
pub fn free_loopback_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// GETs `path` from 127.0.0.1:`port`; returns the status line and the body. The client socket
/// is labeled `scraper` so the scrape is not unlabeled traffic.
#[must_use]
pub fn http_get(daemon: &TestDaemon, port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    daemon
        .client()
        .label(&stream, "scraper")
        .expect("label the scraper");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("http response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}
