//! The wallet of anonymous tokens that pay for sealed sends (`sirr_crypto::tokens`).
//!
//! Every sealed copy (one per recipient account) costs one token. Tokens are fetched in
//! batches over this device's authenticated connection, blinded, so the server cannot tie a
//! token it is later handed on the anonymous connection to this account; the wallet keeps
//! them in the local store between runs, so most sealed sends are not preceded by a fetch (a fetch
//! right before every send would let the server link the two by time). Before keeping a
//! batch the client checks that its key is one the server lists to anonymous connections, so
//! the server cannot single this account out with a key of its own.
//!
//! When the server gives no more (the account is throttled, challenged or out of its hourly
//! budget) the message goes identified, where the abuse checks see it; a ban is an error.

use sirr_crypto::tokens::TokenRequest;
use sirr_proto::{ErrorCode, Request, Response, SealedToken, TokenKey};

use crate::error::{ClientError, Result};
use crate::{Client, unexpected};

/// Key of the wallet in the store's `Kv` table (postcard-encoded tokens).
const WALLET: &str = "sealed_tokens";
/// Tokens asked for at once when the wallet runs short (the server's default cap is 100).
const BATCH: usize = 50;
/// Most tokens in one request to the server (its default `sealed_tokens.batch`).
const MAX_REQUEST: usize = 100;

impl Client {
    /// `n` tokens for one sealed send, taken out of the wallet (which is saved before they
    /// are returned, so none is ever offered twice), fetching more if it is short. `None`
    /// when the server will not issue enough now: send identified instead.
    pub(crate) async fn take_sealed_tokens(&mut self, n: usize) -> Result<Option<Vec<SealedToken>>> {
        let mut wallet = self.wallet().await?;
        if wallet.len() < n {
            let (more, live, refusal) = self.fetch_sealed_tokens(n - wallet.len()).await?;
            // Tokens under keys the server no longer shows would only be refused.
            wallet.retain(|t| live.iter().any(|k| k.id == t.key_id));
            wallet.extend(more);
            self.save_wallet(&wallet).await?;
            if let Some(e) = refusal {
                if e.code == ErrorCode::Banned {
                    return Err(ClientError::Server(e));
                }
                tracing::debug!(code = ?e.code, "no sealed-send tokens now; sending identified");
            }
            if wallet.len() < n {
                return Ok(None);
            }
        }
        let taken = wallet.split_off(wallet.len() - n);
        self.save_wallet(&wallet).await?;
        Ok(Some(taken))
    }

    /// Forget every token (the server refused one: its key expired, e.g. after a restart).
    pub(crate) async fn drop_sealed_tokens(&self) -> Result<()> {
        self.state.delete(WALLET).await
    }

    /// Tokens in the wallet.
    pub async fn sealed_tokens_held(&self) -> Result<usize> {
        Ok(self.wallet().await?.len())
    }

    /// Fetch at least `need` tokens (a batch at least). Returns what it got, the keys the
    /// server accepts now and, if the server stopped issuing, why.
    async fn fetch_sealed_tokens(&mut self, need: usize) -> Result<Fetched> {
        let live = match self.anon().await?.request(Request::SealedTokenKeys).await? {
            Response::SealedTokenKeys { keys } => keys,
            other => return Err(unexpected(other)),
        };
        let target = need.max(BATCH);
        let mut out = Vec::with_capacity(target);
        while out.len() < target {
            let k = (target - out.len()).min(MAX_REQUEST);
            let (req, blinded) = TokenRequest::new(k, &mut rand::rng()).map_err(token_error)?;
            match self.conn()?.request(Request::IssueSealedTokens { blinded }).await {
                Ok(Response::SealedTokens {
                    key,
                    evaluated,
                    proof,
                }) => {
                    check_key(&live, key)?;
                    let partial = evaluated.len() < k;
                    out.extend(req.finalize(key, &evaluated, &proof).map_err(token_error)?);
                    if partial {
                        // That was the rest of the account's budget: ask again later.
                        break;
                    }
                }
                Ok(other) => return Err(unexpected(other)),
                Err(ClientError::Server(e)) => return Ok((out, live, Some(e))),
                Err(e) => return Err(e),
            }
        }
        Ok((out, live, None))
    }

    async fn wallet(&self) -> Result<Vec<SealedToken>> {
        match self.state.get(WALLET).await? {
            None => Ok(Vec::new()),
            // A wallet that does not decode is dropped: tokens are cheap to fetch again.
            Some(bytes) => Ok(postcard::from_bytes(&bytes).unwrap_or_default()),
        }
    }

    async fn save_wallet(&self, wallet: &[SealedToken]) -> Result<()> {
        let bytes = postcard::to_allocvec(wallet).map_err(|e| ClientError::State(e.to_string()))?;
        self.state.set(WALLET, &bytes).await
    }
}

/// What a fetch got: tokens, the live keys, and the refusal that stopped it, if any.
type Fetched = (Vec<SealedToken>, Vec<TokenKey>, Option<sirr_proto::ErrorBody>);

/// Tokens are kept only if the anonymous connection was shown the same key: a key made for
/// this account alone would let the server recognise its tokens when they are spent.
fn check_key(live: &[TokenKey], key: TokenKey) -> Result<()> {
    if live.contains(&key) {
        Ok(())
    } else {
        Err(ClientError::Protocol(
            "the server issued sealed-send tokens under a key it does not show to everyone".into(),
        ))
    }
}

fn token_error(e: sirr_crypto::tokens::TokenError) -> ClientError {
    ClientError::Protocol(format!("sealed-send tokens: {e}"))
}
