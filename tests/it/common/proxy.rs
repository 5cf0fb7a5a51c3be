//! A TCP proxy on loopback that does something to the server's bytes
//! mid-way: cuts them, flips one, stalls until told, or slows them to a
//! rate (a slow link). Independent of the code under test.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to the server's bytes past `at` (counted on each
/// connection from etcd to the client).
#[derive(Clone, Copy)]
pub enum Fault {
    /// Close both sides.
    Cut,
    /// Flip every bit of that byte, then go on.
    Flip,
    /// Stop forwarding; tell the test, and go on when it says so.
    Stall,
    /// Forward at most this many bytes a second from then on (a slow
    /// link).
    Slow(u64),
}

/// A TCP proxy on loopback in front of `upstream`.
pub struct Proxy {
    pub port: u16,
    pub stalled: std::sync::mpsc::Receiver<()>,
    pub go: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: &str, at: u64, fault: Fault) -> Proxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = channel();
        let tx = Arc::new(Mutex::new(tx));
        let go = Arc::new(AtomicBool::new(false));
        let go2 = go.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let Ok(s) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
                std::thread::spawn(move || pipe(c2, s2, None));
                let (tx, go) = (tx.clone(), go2.clone());
                std::thread::spawn(move || pipe(s, c, Some((at, fault, tx, go))));
            }
        });
        Proxy {
            port,
            stalled: rx,
            go,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

type FaultAt = (u64, Fault, Arc<Mutex<Sender<()>>>, Arc<AtomicBool>);

fn pipe(mut from: TcpStream, mut to: TcpStream, fault: Option<FaultAt>) {
    let mut buf = vec![0u8; 64 << 10];
    let mut seen: u64 = 0;
    let mut done = false;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        if let Some((at, f, tx, go)) = &fault
            && !done
            && !matches!(f, Fault::Slow(_))
            && seen + n as u64 > *at
        {
            done = true;
            let i = (*at - seen) as usize;
            match f {
                Fault::Cut => {
                    let _ = to.write_all(&chunk[..i]);
                    break;
                }
                Fault::Flip => chunk[i] ^= 0xff,
                Fault::Slow(_) => {}
                Fault::Stall => {
                    let _ = to.write_all(&chunk[..i]);
                    let _ = tx.lock().unwrap().send(());
                    while !go.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if to.write_all(&chunk[i..]).is_err() {
                        break;
                    }
                    seen += n as u64;
                    continue;
                }
            }
        }
        if let Some((at, Fault::Slow(rate), ..)) = &fault
            && seen + n as u64 > *at
        {
            std::thread::sleep(Duration::from_secs_f64(n as f64 / *rate as f64));
        }
        seen += n as u64;
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
