use sirr_proto::{ErrorBody, ErrorCode};

/// Everything that can go wrong on the client side, grouped so a caller can tell what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error.
    #[error("server: {0}")]
    Server(ErrorBody),
    /// Could not reach the server, or the connection broke.
    #[error("connection: {0}")]
    Connection(String),
    /// The server sent something this client cannot understand.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The home directory is missing, unreadable or not registered.
    #[error("local state: {0}")]
    State(String),
    /// The local store failed (unavailable, full, corrupt); nothing of the failed write landed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The caller asked for something invalid (a bad number, an oversize message, ...).
    #[error("{0}")]
    Invalid(String),
    /// The number has no Sirr account.
    #[error("{0} is not on Sirr")]
    NotOnSirr(String),
    /// End-to-end encryption refused something (a bad KeyPackage, an undecryptable message).
    #[error("encryption: {0}")]
    Crypto(#[from] sirr_crypto::CryptoError),
}

impl ClientError {
    /// The server's error code, if the server refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(e) => Some(e.code),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::State(e.to_string())
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
