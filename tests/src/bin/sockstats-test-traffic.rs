//! A command that moves a known number of bytes, for `sockstats run` and rule tests:
//! `sockstats-test-traffic ADDRESS SEND_BYTES EXIT_CODE` connects over TCP to `ADDRESS`, sends
//! `SEND_BYTES`, reads until the peer closes, prints the bytes it read and exits with `EXIT_CODE`.
use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, TcpStream},
    process::ExitCode,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, send, code] = &args[..] else {
        eprintln!("usage: sockstats-test-traffic ADDRESS SEND_BYTES EXIT_CODE");
        return ExitCode::from(2);
    };
    let send: usize = send.parse().expect("SEND_BYTES is a number");
    let code: u8 = code.parse().expect("EXIT_CODE is 0-255");
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.write_all(&vec![b's'; send]).expect("send");
    stream.shutdown(Shutdown::Write).expect("shutdown");
    let mut received = Vec::new();
    stream.read_to_end(&mut received).expect("receive");
    println!("{}", received.len());
    ExitCode::from(code)
}
