//! A network outage for one client: a loopback TCP relay in front of a server, whose
//! connections a test cuts and refuses until it lets them through again, while the
//! server and every other client go on.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The relay. Its thread takes connections until the test process ends.
pub struct Outage {
    port: u16,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    down: AtomicBool,
    /// Both ends of every connection relayed so far.
    streams: Mutex<Vec<TcpStream>>,
}

impl Outage {
    /// A relay to the server on loopback port `server_port`, letting connections through.
    pub fn relay_to(server_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        let shared = Arc::new(Shared::default());
        let relay = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if relay.down.load(Ordering::SeqCst) {
                    continue; // dropped: refused while the outage lasts
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    continue;
                };
                if let Err(error) = relay.relay(client, server) {
                    eprintln!("relaying a connection: {error}");
                }
            }
        });
        Self { port, shared }
    }

    /// The URL a client connects to the server through.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Closes every connection relayed so far and refuses new ones.
    pub fn begin(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        let streams = std::mem::take(&mut *self.shared.streams.lock().expect("not poisoned"));
        for stream in streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Lets connections through again.
    pub fn end(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }
}

impl Shared {
    fn relay(&self, client: TcpStream, server: TcpStream) -> io::Result<()> {
        let copy = |mut from: TcpStream, mut to: TcpStream| {
            std::thread::spawn(move || {
                let _ = io::copy(&mut from, &mut to);
                let _ = to.shutdown(Shutdown::Both);
            });
        };
        {
            let mut streams = self.streams.lock().expect("not poisoned");
            streams.push(client.try_clone()?);
            streams.push(server.try_clone()?);
        }
        copy(client.try_clone()?, server.try_clone()?);
        copy(server, client);
        Ok(())
    }
}
