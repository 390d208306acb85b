//! HTTP/1.1 on the wire: request heads (parsed with httparse, under limits), query
//! strings, and response heads. Pure functions over bytes; the reactor owns the sockets.

pub mod query;
pub mod request;
pub mod response;

/// A request the server refuses: the status and a short message for the JSON body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status code.
    pub status: u16,
    /// Text for `{"error": …}`.
    pub message: &'static str,
}

impl HttpError {
    /// Shorthand constructor.
    pub const fn new(status: u16, message: &'static str) -> Self {
        HttpError { status, message }
    }
}
