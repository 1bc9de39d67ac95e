//! Anonymous tokens that pay for sealed sends (Privacy Pass style, privately verifiable).
//!
//! The server does not know who sends a sealed message, so it cannot refuse a banned or
//! throttled account's sealed sends by name. Instead each sealed copy costs a token the
//! server issued earlier to an authenticated device in good standing, and which it can check
//! but cannot tie to that device:
//!
//! 1. the client picks random nonces and *blinds* them ([`TokenRequest::new`]);
//! 2. the server, having checked the account's standing and budget, evaluates the blinded
//!    elements under its current key and proves (one DLEQ proof per batch) that it used the
//!    key whose public half it shows everyone ([`TokenIssuer::issue`]);
//! 3. the client checks the proof and unblinds ([`TokenRequest::finalize`]): a token is the
//!    nonce with the VOPRF output on it, which the server never saw during issuance;
//! 4. spending, the server recomputes the output from the nonce under its key and compares in
//!    constant time ([`TokenIssuer::verify`]); its caller keeps the spent nonces.
//!
//! The primitive is the VOPRF of RFC 9497 (ciphersuite ristretto255-SHA512) from the `voprf`
//! crate. Verifiable mode (not the plain OPRF) matters for privacy: without the proof a server
//! could evaluate each account's batch under a key of its own and recognise the key at
//! redemption. The client also checks that the key is one the server lists to anonymous
//! connections (`Request::SealedTokenKeys`), i.e. the same for everyone.
//!
//! Sans IO like the rest of the crate: randomness comes from the caller.

use sirr_proto::{Bytes, SealedToken, TokenKey};
use subtle::ConstantTimeEq;
use voprf::{BlindedElement, EvaluationElement, Group, Proof, Ristretto255, VoprfClient, VoprfServer};

/// Most tokens in one issuance request (the crate's batch limit is `u16::MAX`; the server
/// caps lower).
pub const MAX_BATCH: usize = 1_000;
/// Length of a token's VOPRF output (SHA-512).
pub const OUTPUT_LEN: usize = 64;

/// Domain separation for the server's key derivation.
const KEY_INFO: &[u8] = b"sirr sealed-send tokens v1";

/// Why token issuance or finalisation failed. Everything here comes from the other side's
/// bytes, so none of it panics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    #[error("a blinded or evaluated element is not a valid ristretto255 point")]
    BadElement,
    #[error("the token key is not a valid ristretto255 public key")]
    BadKey,
    #[error("the batch proof does not verify: the tokens were not issued under that key")]
    BadProof,
    #[error("expected 1 to {expected} evaluated elements, got {got}")]
    CountMismatch { expected: usize, got: usize },
    #[error("a token batch holds 1 to {MAX_BATCH} tokens, not {0}")]
    BatchSize(usize),
    #[error("token computation failed")]
    Internal,
}

/// Adapts the caller's `rand` 0.9 generator to the `rand_core` 0.6 traits `voprf` takes.
struct Rng06<'a, R: rand::CryptoRng + ?Sized>(&'a mut R);

impl<R: rand::CryptoRng + ?Sized> rand_core06::RngCore for Rng06<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core06::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl<R: rand::CryptoRng + ?Sized> rand_core06::CryptoRng for Rng06<'_, R> {}

/// The server's side: one token key. Keys are meant to live for hours and be replaced
/// (the caller keeps the previous one to verify tokens issued just before a rotation).
pub struct TokenIssuer {
    id: u64,
    server: VoprfServer<Ristretto255>,
    public_key: [u8; 32],
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenIssuer(key {:#x}, ..)", self.id)
    }
}

/// One issuance answer: the evaluated elements, in request order, and the batch proof.
pub struct Issued {
    pub evaluated: Vec<Bytes>,
    pub proof: Bytes,
}

impl TokenIssuer {
    /// A fresh random key named `id`.
    pub fn generate<R: rand::CryptoRng + ?Sized>(id: u64, rng: &mut R) -> Result<Self, TokenError> {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let server =
            VoprfServer::<Ristretto255>::new_from_seed(&seed, KEY_INFO).map_err(|_| TokenError::Internal)?;
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(&Ristretto255::serialize_elem(server.get_public_key()));
        Ok(Self {
            id,
            server,
            public_key,
        })
    }

    pub fn key(&self) -> TokenKey {
        TokenKey {
            id: self.id,
            public_key: self.public_key,
        }
    }

    /// Evaluate a batch of blinded elements under this key, with one proof for all of them.
    pub fn issue<R: rand::CryptoRng + ?Sized>(
        &self,
        blinded: &[Bytes],
        rng: &mut R,
    ) -> Result<Issued, TokenError> {
        if blinded.is_empty() || blinded.len() > MAX_BATCH {
            return Err(TokenError::BatchSize(blinded.len()));
        }
        let elements = blinded
            .iter()
            .map(|b| BlindedElement::<Ristretto255>::deserialize(b).map_err(|_| TokenError::BadElement))
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .server
            .batch_blind_evaluate(&mut Rng06(rng), &elements)
            .map_err(|_| TokenError::Internal)?;
        Ok(Issued {
            evaluated: result
                .messages
                .iter()
                .map(|m| Bytes::from(m.serialize().to_vec()))
                .collect(),
            proof: Bytes::from(result.proof.serialize().to_vec()),
        })
    }

    /// Whether `token` was issued under this key (its nonce's output matches), in constant
    /// time. Says nothing about whether it was spent before: that is the caller's to track.
    pub fn verify(&self, token: &SealedToken) -> bool {
        if token.key_id != self.id || token.output.len() != OUTPUT_LEN {
            return false;
        }
        match self.server.evaluate(&token.nonce) {
            Ok(output) => bool::from(output.as_slice().ct_eq(&token.output[..])),
            Err(_) => false,
        }
    }
}

/// The client's side of one issuance: the blinding states, kept until the answer comes.
pub struct TokenRequest {
    nonces: Vec<[u8; 32]>,
    clients: Vec<VoprfClient<Ristretto255>>,
}

impl TokenRequest {
    /// Blind `n` fresh random nonces; returns the state and the elements to send.
    pub fn new<R: rand::CryptoRng + ?Sized>(n: usize, rng: &mut R) -> Result<(Self, Vec<Bytes>), TokenError> {
        if n == 0 || n > MAX_BATCH {
            return Err(TokenError::BatchSize(n));
        }
        let mut nonces = Vec::with_capacity(n);
        let mut clients = Vec::with_capacity(n);
        let mut blinded = Vec::with_capacity(n);
        for _ in 0..n {
            let mut nonce = [0u8; 32];
            rng.fill_bytes(&mut nonce);
            let b = VoprfClient::<Ristretto255>::blind(&nonce, &mut Rng06(&mut *rng))
                .map_err(|_| TokenError::Internal)?;
            nonces.push(nonce);
            blinded.push(Bytes::from(b.message.serialize().to_vec()));
            clients.push(b.state);
        }
        Ok((Self { nonces, clients }, blinded))
    }

    /// Check the server's answer under `key` and unblind it into tokens. The server may
    /// evaluate only the first elements of the batch (what is left of the account's budget);
    /// the proof then covers those, and that many tokens come out.
    pub fn finalize(
        mut self,
        key: TokenKey,
        evaluated: &[Bytes],
        proof: &[u8],
    ) -> Result<Vec<SealedToken>, TokenError> {
        if evaluated.is_empty() || evaluated.len() > self.clients.len() {
            return Err(TokenError::CountMismatch {
                expected: self.clients.len(),
                got: evaluated.len(),
            });
        }
        self.clients.truncate(evaluated.len());
        self.nonces.truncate(evaluated.len());
        let pk = Ristretto255::deserialize_elem(&key.public_key).map_err(|_| TokenError::BadKey)?;
        let messages = evaluated
            .iter()
            .map(|e| EvaluationElement::<Ristretto255>::deserialize(e).map_err(|_| TokenError::BadElement))
            .collect::<Result<Vec<_>, _>>()?;
        let proof = Proof::<Ristretto255>::deserialize(proof).map_err(|_| TokenError::BadProof)?;
        let outputs = VoprfClient::batch_finalize(&self.nonces, &self.clients, &messages, &proof, pk)
            .map_err(|e| match e {
                voprf::Error::ProofVerification => TokenError::BadProof,
                _ => TokenError::Internal,
            })?;
        self.nonces
            .iter()
            .zip(outputs)
            .map(|(nonce, out)| {
                let out = out.map_err(|_| TokenError::Internal)?;
                Ok(SealedToken {
                    key_id: key.id,
                    nonce: *nonce,
                    output: Bytes::from(out.to_vec()),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(issuer: &TokenIssuer, n: usize) -> Vec<SealedToken> {
        let mut rng = rand::rng();
        let (req, blinded) = TokenRequest::new(n, &mut rng).unwrap();
        let issued = issuer.issue(&blinded, &mut rng).unwrap();
        req.finalize(issuer.key(), &issued.evaluated, &issued.proof)
            .unwrap()
    }

    #[test]
    fn issued_tokens_verify_under_their_key_only() {
        let mut rng = rand::rng();
        let a = TokenIssuer::generate(1, &mut rng).unwrap();
        let b = TokenIssuer::generate(2, &mut rng).unwrap();
        let ts = tokens(&a, 5);
        assert_eq!(ts.len(), 5);
        assert!(ts.iter().all(|t| a.verify(t)));
        assert!(ts.iter().all(|t| !b.verify(t)), "another key refuses them");
        let mut relabelled = ts[0].clone();
        relabelled.key_id = 2;
        assert!(!b.verify(&relabelled), "a key id alone proves nothing");
        let mut forged = ts[0].clone();
        forged.nonce[0] ^= 1;
        assert!(!a.verify(&forged), "the output is bound to the nonce");
        let mut short = ts[1].clone();
        short.output.truncate(10);
        assert!(!a.verify(&short));
    }

    #[test]
    fn the_server_never_sees_the_nonces_it_issues() {
        let mut rng = rand::rng();
        let (req, blinded) = TokenRequest::new(3, &mut rng).unwrap();
        for (n, b) in req.nonces.iter().zip(&blinded) {
            assert!(!b.windows(8).any(|w| n.windows(8).any(|x| x == w)));
        }
        let issuer = TokenIssuer::generate(9, &mut rng).unwrap();
        let issued = issuer.issue(&blinded, &mut rng).unwrap();
        let ts = req
            .finalize(issuer.key(), &issued.evaluated, &issued.proof)
            .unwrap();
        for t in &ts {
            assert!(!blinded.iter().any(|b| b[..] == t.output[..32]));
            assert!(!issued.evaluated.iter().any(|e| e[..] == t.output[..32]));
        }
    }

    #[test]
    fn a_partly_evaluated_batch_gives_that_many_tokens() {
        let mut rng = rand::rng();
        let issuer = TokenIssuer::generate(4, &mut rng).unwrap();
        let (req, blinded) = TokenRequest::new(5, &mut rng).unwrap();
        let issued = issuer.issue(&blinded[..2], &mut rng).unwrap();
        let ts = req
            .finalize(issuer.key(), &issued.evaluated, &issued.proof)
            .unwrap();
        assert_eq!(ts.len(), 2);
        assert!(ts.iter().all(|t| issuer.verify(t)));
    }

    #[test]
    fn a_batch_under_another_key_than_shown_is_refused() {
        let mut rng = rand::rng();
        let shown = TokenIssuer::generate(1, &mut rng).unwrap();
        let marking = TokenIssuer::generate(1, &mut rng).unwrap();
        let (req, blinded) = TokenRequest::new(2, &mut rng).unwrap();
        let issued = marking.issue(&blinded, &mut rng).unwrap();
        assert_eq!(
            req.finalize(shown.key(), &issued.evaluated, &issued.proof).err(),
            Some(TokenError::BadProof)
        );
    }

    #[test]
    fn bad_bytes_are_typed_errors() {
        let mut rng = rand::rng();
        let issuer = TokenIssuer::generate(1, &mut rng).unwrap();
        assert_eq!(
            issuer.issue(&[Bytes::from(vec![0xff; 32])], &mut rng).err(),
            Some(TokenError::BadElement)
        );
        assert_eq!(
            issuer.issue(&[Bytes::from(vec![1; 3])], &mut rng).err(),
            Some(TokenError::BadElement)
        );
        assert_eq!(issuer.issue(&[], &mut rng).err(), Some(TokenError::BatchSize(0)));
        let (req, blinded) = TokenRequest::new(2, &mut rng).unwrap();
        let issued = issuer.issue(&blinded, &mut rng).unwrap();
        assert!(matches!(
            TokenRequest::new(1, &mut rng).unwrap().0.finalize(
                issuer.key(),
                &issued.evaluated,
                &issued.proof
            ),
            Err(TokenError::CountMismatch { expected: 1, got: 2 })
        ));
        assert_eq!(
            TokenRequest::new(2, &mut rng)
                .unwrap()
                .0
                .finalize(issuer.key(), &issued.evaluated[..1], &issued.proof)
                .err(),
            Some(TokenError::BadProof),
            "a proof over two elements does not cover one"
        );
        let mut key = issuer.key();
        key.public_key = [0xff; 32];
        assert_eq!(
            req.finalize(key, &issued.evaluated, &issued.proof).err(),
            Some(TokenError::BadKey)
        );
    }
}
