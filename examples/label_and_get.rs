//! Label a socket and read its bytes back, with the Go-package-shaped API.
//!
//! Run it while sockstatsd is running (as root, or as any user the socket's mode lets in):
//!
//! ```text
//! cargo run -p sockstats-common --features user --example label_and_get
//! ```
//!
//! It makes a loopback TCP connection to itself, labels the client end `example-upload`,
//! sends 100,000 bytes, and prints what sockstats counted for the label.
use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, TcpListener, TcpStream},
    thread,
};

use sockstats_common::sockstats;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !sockstats::is_available() {
        return Err(format!(
            "sockstatsd is not running at {} (start it, or set SOCKSTATS_SOCKET)",
            sockstats::default_socket_path().display()
        )
        .into());
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let server = thread::spawn(move || -> std::io::Result<usize> {
        let (mut stream, _) = listener.accept()?;
        let mut received = Vec::new();
        stream.read_to_end(&mut received)?;
        Ok(received.len())
    });
    let mut upload = TcpStream::connect(address)?;
    let labeled = sockstats::with_sock_stats(&upload, "example-upload")?;
    println!(
        "labeled socket {} ({} over {}) as {:?} (label id {})",
        labeled.sockets[0].cookie,
        labeled.sockets[0].protocol,
        labeled.sockets[0].family,
        labeled.label,
        labeled.label_id
    );
    upload.write_all(&vec![0u8; 100_000])?;
    upload.shutdown(Shutdown::Write)?;
    let received = server.join().expect("server thread")?;
    drop(upload);

    let stats = sockstats::get()?;
    let counted = stats.stats["example-upload"];
    println!(
        "example-upload: tx_bytes={} rx_bytes={} (the server read {received})",
        counted.tx_bytes, counted.rx_bytes
    );
    Ok(())
}
