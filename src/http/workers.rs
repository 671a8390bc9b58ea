//! The request workers: one thread per core, each a current-thread runtime that accepts connections
//! on the shared listening socket and serves them, and runs the fibers of the calls it received (see
//! `engine::fiber`). A call that waits on an upstream is suspended and resumed on the thread that
//! accepted its connection, with no hand-off between threads on the way.
//!
//! Each worker polls the one socket; the kernel wakes them all on a new connection and one of them
//! takes it, so a worker busy with its requests takes fewer new ones.

use axum::Router;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Serves `router` on `listener` with a worker per core until `shutdown` completes or a worker fails,
/// then lets every worker finish its connections.
pub async fn serve(
    router: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let count = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = CancellationToken::new();
    let (ended, mut endings) = mpsc::channel(count);
    let listeners = (0..count).map(|_| listener.try_clone()).collect::<std::io::Result<Vec<_>>>()?;
    for (index, listener) in listeners.into_iter().enumerate() {
        let (router, stopped, ended) = (router.clone(), stop.clone(), ended.clone());
        let work = move || {
            let served = crate::engine::worker(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                axum::serve(listener, router).with_graceful_shutdown(stopped.cancelled_owned()).await
            });
            let _ = ended.blocking_send(served.and_then(|served| served));
        };
        if let Err(error) = std::thread::Builder::new().name(format!("worker-{index}")).spawn(work) {
            stop.cancel();
            return Err(error);
        }
    }
    drop(ended);
    let first = tokio::select! {
        () = shutdown => Ok(()),
        ended = endings.recv() => ended.unwrap_or(Ok(())),
    };
    stop.cancel();
    let mut result = first;
    while let Some(ended) = endings.recv().await {
        result = result.and(ended);
    }
    result
}
