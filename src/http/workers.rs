//! The request workers: one thread per core, each a current-thread runtime that serves the
//! connections handed to it and runs the fibers of the calls it received (see `engine::fiber`). A call
//! that waits on an upstream is suspended and resumed on the thread that serves its connection, with
//! no hand-off between threads on the way.
//!
//! One acceptor takes every new connection and hands it to the workers in turn. Letting each worker
//! accept on the shared socket instead left the balance to a race: the first worker awake took a whole
//! burst of connections, and with keep-alive it kept them, so one core served while the other idled.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::Request;
use axum::response::Response;
use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Serves `service` on `listener` with a worker per core until `shutdown` completes or a worker fails,
/// then lets every worker finish its connections.
pub async fn serve<S>(service: S, mut listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()>
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let local = listener.local_addr()?;
    let count = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = CancellationToken::new();
    let (ended, mut endings) = mpsc::channel(count);
    let mut workers = Vec::with_capacity(count);
    for index in 0..count {
        let (handed, connections) = mpsc::unbounded_channel();
        let (service, stopped, ended) = (service.clone(), stop.clone(), ended.clone());
        let work = move || {
            let served = crate::engine::worker(async move {
                let listener = Handed { connections, local };
                // A clone of the service per connection (serving a router itself would rebuild its
                // route table for each one, ≈ 20 KiB held per open connection).
                let made = axum::ServiceExt::<Request>::into_make_service(service);
                axum::serve(listener, made).with_graceful_shutdown(stopped.cancelled_owned()).await
            });
            let _ = ended.blocking_send(served.and_then(|served| served));
        };
        if let Err(error) = std::thread::Builder::new().name(format!("worker-{index}")).spawn(work) {
            stop.cancel();
            return Err(error);
        }
        workers.push(handed);
    }
    drop(ended);
    let accept = async {
        for worker in workers.iter().cycle() {
            // Errors are handled inside (a connection reset is skipped, running out of files waits).
            let (stream, _) = Listener::accept(&mut listener).await;
            // A worker that has stopped takes no more: the select below is ending anyway.
            if let Ok(stream) = stream.into_std() {
                let _ = worker.send(stream);
            }
        }
    };
    let first = tokio::select! {
        () = shutdown => Ok(()),
        ended = endings.recv() => ended.unwrap_or(Ok(())),
        () = accept => Ok(()),
    };
    stop.cancel();
    drop(workers);
    let mut result = first;
    while let Some(ended) = endings.recv().await {
        result = result.and(ended);
    }
    result
}

/// The connections the acceptor hands one worker, as the listener its server accepts from.
struct Handed {
    connections: mpsc::UnboundedReceiver<std::net::TcpStream>,
    local: SocketAddr,
}

impl Listener for Handed {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            // Once the acceptor is gone the server is shutting down: wait for that.
            let Some(stream) = self.connections.recv().await else { std::future::pending().await };
            // Registered with this worker's runtime, so the connection is served here.
            match stream.peer_addr().and_then(|peer| Ok((TcpStream::from_std(stream)?, peer))) {
                Ok(connection) => return connection,
                Err(error) => tracing::debug!("a connection ended before it was served: {error}"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_dealt_to_the_workers_in_turn_and_stay_where_they_were_dealt() {
        let router = axum::Router::new()
            .route("/", axum::routing::get(|| async { std::thread::current().name().unwrap_or_default().to_owned() }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(router, listener, async {
            let _ = stopped.await;
        }));
        let count = std::thread::available_parallelism().map_or(2, |n| n.get());
        let _ = rustls::crypto::ring::default_provider().install_default();
        // One client per connection, each connecting after the last was answered: a burst that a
        // race for the socket would hand to whichever worker woke first.
        let clients: Vec<reqwest::Client> = (0..2 * count).map(|_| reqwest::Client::new()).collect();
        let mut served = Vec::new();
        for client in &clients {
            served.push(client.get(&url).send().await.unwrap().text().await.unwrap());
        }
        let expected: Vec<String> = (0..2 * count).map(|i| format!("worker-{}", i % count)).collect();
        assert_eq!(served, expected);
        for (client, worker) in clients.iter().zip(&expected) {
            assert_eq!(&client.get(&url).send().await.unwrap().text().await.unwrap(), worker);
        }
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
