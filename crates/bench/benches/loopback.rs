//! The network floor: one round trip of a 256-byte frame over loopback TCP between two threads
//! (write, echo, read back). Every delivery latency in BENCHMARKS.md crosses loopback at least
//! twice (sender → server → recipient), so this is the physical lower bound to read them against.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn loopback(c: &mut Criterion) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_nodelay(true).expect("nodelay");
        let mut buf = [0u8; 256];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut client = TcpStream::connect(addr).expect("connect");
    client.set_nodelay(true).expect("nodelay");
    let frame = [7u8; 256];
    let mut back = [0u8; 256];
    let mut group = c.benchmark_group("floor");
    group.throughput(Throughput::Elements(1));
    group.bench_function("loopback_round_trip_256B", |b| {
        b.iter(|| {
            client.write_all(&frame).expect("write");
            client.read_exact(&mut back).expect("read");
        })
    });
    group.finish();
}

criterion_group!(benches, loopback);
criterion_main!(benches);
