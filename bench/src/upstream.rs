//! A fast loopback resource API: answers every request with the same small JSON body, so
//! what a benchmark measures in front of it is the proxy, not the API.

use std::net::SocketAddr;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

/// The answer to every call.
pub const BODY: &str = r#"{"orders":[{"id":1,"item":"tea","qty":2},{"id":2,"item":"cake","qty":1}]}"#;

async fn answer() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-store")], BODY)
}

/// The router: every method and path answers [`BODY`].
pub fn router() -> axum::Router {
    axum::Router::new().fallback(answer)
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}

/// The base URL of an upstream at `addr` (with a path, as a real API has one).
pub fn base_url(addr: SocketAddr) -> String {
    format!("http://{addr}/v1/")
}

/// Starts an upstream on its own thread and single-threaded runtime (so it does not
/// share the caller's runtime); returns its base URL.
pub fn spawn_background() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    listener.set_nonblocking(true).expect("non-blocking listener");
    std::thread::Builder::new()
        .name("upstream".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("upstream runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let _ = serve(listener).await;
            });
        })
        .expect("upstream thread");
    base_url(addr)
}
