//! One module per endpoint group. A handler reads what it needs from the request, calls
//! a service and builds the answer; the router applies the route's policy around it.
//!
//! Handlers never return an invocation error: every expected failure is an
//! [`ErrorAnswer`] (an `Err` out of the Lambda handler would become a useless 502 at the
//! edge).

pub mod backchannel;
pub mod callback;
pub mod login;
pub mod ops;
pub mod proxy;
pub mod session;

use lambda_http::{Body, Response};

use super::body::ResponseBody;
use super::error::ErrorAnswer;

/// A handler's outcome before the route's policy is applied: an answer the BFF makes whole.
pub type Reply = Result<Response<Body>, ErrorAnswer>;

/// The outcome of a handler whose answer may stream (the proxy's).
pub type StreamedReply = Result<Response<ResponseBody>, ErrorAnswer>;

/// A reply and a cookie to set on it whatever the outcome (the callback's spent state).
pub struct Handled {
    /// The outcome.
    pub reply: StreamedReply,
    /// A `Set-Cookie` value to add to the answer, success or error.
    pub set_cookie: Option<String>,
}

impl Handled {
    /// `reply`, with `set_cookie` added whatever the outcome.
    pub fn with_cookie(reply: Reply, set_cookie: Option<String>) -> Self {
        Self {
            reply: reply.map(|response| response.map(ResponseBody::from)),
            set_cookie,
        }
    }
}

impl From<Reply> for Handled {
    fn from(reply: Reply) -> Self {
        Self::with_cookie(reply, None)
    }
}

impl From<StreamedReply> for Handled {
    fn from(reply: StreamedReply) -> Self {
        Self {
            reply,
            set_cookie: None,
        }
    }
}
