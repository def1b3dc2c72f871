//! A minimal `lambda_http` function: answers every function-URL event with `200 hello`.
//!
//! It is the floor the benchmarks compare the BFF functions with: the same runtime crate,
//! the same Tokio runtime and the same release profile, and nothing else.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

async fn hello(_request: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::Text("hello".into()))?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}
