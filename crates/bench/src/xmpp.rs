//! A minimal XMPP client (RFC 6120/6121) for driving ejabberd with the same workload shape as
//! Sirr: plain TCP c2s on loopback, stream negotiation, SASL SCRAM-SHA-1 as real clients log in
//! (RFC 5802), resource binding, initial presence, in-band registration (XEP-0077) to create
//! accounts, and one-to-one `<message>` stanzas.
//!
//! Only what the benchmark needs: the stream is split into its top-level elements by a small
//! scanner (quotes, self-closing tags, comments and CDATA respected), and the few values read back
//! (an attribute, a child's text) are found by name. Everything the server sends is untrusted
//! input: malformed data is an error, never a panic.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

/// The XMPP domain served by the loopback ejabberd (`hosts` in its config).
pub const DOMAIN: &str = "localhost";

/// Bytes read from the socket at a time; kept small like the WebSocket clients' buffers.
const READ_CHUNK: usize = 8192;
/// A top-level element larger than this is refused (the server's `max_stanza_size` is 256 KiB).
const MAX_ELEMENT: usize = 1 << 20;

/// One top-level item of the server's stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// `<stream:stream ...>`: the server opened (or restarted) its stream.
    Header,
    /// `</stream:stream>`: the server closed its stream.
    Close,
    /// A complete child of the stream: a stanza, `<stream:features>`, a SASL element ...
    Element(Vec<u8>),
}

/// Split the next top-level item off `buf`. `Ok(None)`: more bytes are needed. Returns the item
/// and how many bytes it took (leading whitespace and `<?xml ...?>` included).
pub fn split_item(buf: &[u8]) -> anyhow::Result<Option<(Item, usize)>> {
    let mut i = 0;
    loop {
        while i < buf.len() && buf[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == buf.len() {
            return Ok(None);
        }
        if buf[i] != b'<' {
            bail!("text at stream level");
        }
        if buf[i..].starts_with(b"<?") {
            let Some(end) = find(&buf[i..], b"?>") else {
                return Ok(None);
            };
            i += end + 2;
            continue;
        }
        break;
    }
    let start = i;
    if buf[start..].starts_with(b"</stream:stream") {
        return Ok(find(&buf[start..], b">").map(|e| (Item::Close, start + e + 1)));
    }
    if buf[start..].starts_with(b"<stream:stream") {
        return Ok(tag_end(&buf[start..]).map(|e| (Item::Header, start + e + 1)));
    }
    let mut depth = 0usize;
    let mut j = start;
    loop {
        let Some(lt) = buf[j..].iter().position(|&b| b == b'<') else {
            return Ok(None);
        };
        let k = j + lt;
        let rest = &buf[k..];
        if rest.len() < 2 {
            return Ok(None);
        }
        if rest[1] == b'/' {
            let Some(e) = find(rest, b">") else {
                return Ok(None);
            };
            depth = depth
                .checked_sub(1)
                .context("closing tag without an opening one")?;
            j = k + e + 1;
        } else if rest.starts_with(b"<!--") {
            let Some(e) = find(rest, b"-->") else {
                return Ok(None);
            };
            j = k + e + 3;
        } else if rest.starts_with(b"<![CDATA[") {
            let Some(e) = find(rest, b"]]>") else {
                return Ok(None);
            };
            j = k + e + 3;
        } else {
            let Some(e) = tag_end(rest) else { return Ok(None) };
            if rest[e - 1] != b'/' {
                depth += 1;
            }
            j = k + e + 1;
        }
        if depth == 0 {
            return Ok(Some((Item::Element(buf[start..j].to_vec()), j)));
        }
    }
}

/// Index of the `>` ending the tag that starts `s`, skipping quoted attribute values.
fn tag_end(s: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in s.iter().enumerate() {
        match (quote, b) {
            (None, b'\'' | b'"') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The element's own name (`message`, `iq`, `stream:features`, ...).
pub fn name(el: &[u8]) -> &[u8] {
    let rest = el.get(1..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The raw value of attribute `attr` on the element's own (first) tag. Not unescaped: the values
/// read back (ids, types) are ones this client chose, plain letters and digits.
pub fn attr<'a>(el: &'a [u8], attr: &str) -> Option<&'a [u8]> {
    let tag = &el[..tag_end(el)?];
    let mut i = 0;
    while let Some(p) = find(&tag[i..], attr.as_bytes()) {
        let at = i + p;
        let after = at + attr.len();
        let boundary = at > 0 && tag[at - 1].is_ascii_whitespace();
        if boundary && tag.get(after) == Some(&b'=') {
            let q = *tag.get(after + 1)?;
            if q != b'\'' && q != b'"' {
                return None;
            }
            let v = &tag[after + 2..];
            return Some(&v[..v.iter().position(|&b| b == q)?]);
        }
        i = after;
    }
    None
}

/// The text of the first child element named `child` (`<body>...</body>`), if any.
pub fn child_text<'a>(el: &'a [u8], child: &str) -> Option<&'a [u8]> {
    let open = format!("<{child}");
    let mut from = 0;
    loop {
        let at = from + find(&el[from..], open.as_bytes())?;
        let after = el.get(at + open.len()).copied()?;
        if after == b'>' || after.is_ascii_whitespace() {
            let start = at + tag_end(&el[at..])? + 1;
            if el[start - 2] == b'/' {
                return Some(&[]);
            }
            let close = format!("</{child}>");
            let len = find(&el[start..], close.as_bytes())?;
            return Some(&el[start..start + len]);
        }
        from = at + open.len();
    }
}

/// The client side of SASL SCRAM-SHA-1 (RFC 5802) without channel binding (`n,,`), as XMPP
/// clients do it over a connection without TLS.
pub struct Scram {
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<[u8; 20]>,
}

type HmacSha1 = Hmac<Sha1>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut m = HmacSha1::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// `Hi()` of RFC 5802: PBKDF2 with HMAC-SHA-1 and one output block.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 20] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

impl Scram {
    /// Start an exchange for `user` (a plain username: letters and digits, so no SASLprep or
    /// `=2C` escaping is needed) with the client nonce `nonce`.
    pub fn new(user: &str, password: &str, nonce: &str) -> Scram {
        Scram {
            password: password.to_owned(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.to_owned(),
            server_signature: None,
        }
    }

    /// The client-first message.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Answer the server-first message with the client-final message (carrying the proof).
    pub fn client_final(&mut self, server_first: &str) -> anyhow::Result<String> {
        let field = |k: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(k))
                .with_context(|| format!("server-first message without {k}"))
        };
        let nonce = field("r=")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            bail!("server nonce does not extend the client's");
        }
        let salt = B64.decode(field("s=")?).context("salt is not base64")?;
        let iterations: u32 = field("i=")?.parse().context("iteration count")?;
        if !(1..=1_000_000).contains(&iterations) {
            bail!("iteration count {iterations} out of range");
        }
        let salted = hi(self.password.as_bytes(), &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 20] = Sha1::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
        self.server_signature = Some(hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Check the server-final message: the server proves it knew the password's keys too.
    pub fn verify_server_final(&self, server_final: &str) -> anyhow::Result<()> {
        let v = server_final
            .strip_prefix("v=")
            .context("server-final without v=")?;
        let expected = self
            .server_signature
            .context("server-final before server-first")?;
        if B64.decode(v).ok().as_deref() != Some(&expected[..]) {
            bail!("server signature does not match");
        }
        Ok(())
    }
}

/// The read half of a connection and the bytes read but not yet parsed; shared with the Redis
/// client. Separate from the write half so one task can wait on both in one `select!`.
pub struct Reader {
    rd: OwnedReadHalf,
    buf: Vec<u8>,
    start: usize,
}

impl Reader {
    pub fn new(rd: OwnedReadHalf) -> Reader {
        Reader {
            rd,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
        }
    }

    /// Read more bytes into the buffer (0 = the server closed the connection). Cancel-safe.
    pub async fn read(&mut self) -> anyhow::Result<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_CHUNK);
        Ok(self.rd.read_buf(&mut self.buf).await?)
    }

    /// Parse the next complete item already buffered with `parse`, which answers `Ok(None)`
    /// while more bytes are needed and otherwise the item and the bytes it took.
    pub fn try_parse<T>(
        &mut self,
        parse: impl Fn(&[u8]) -> anyhow::Result<Option<(T, usize)>>,
    ) -> anyhow::Result<Option<T>> {
        let pending = &self.buf[self.start..];
        match parse(pending)? {
            Some((item, used)) => {
                self.start += used;
                Ok(Some(item))
            }
            None if pending.len() > MAX_ELEMENT => bail!("item over {MAX_ELEMENT} bytes"),
            None => Ok(None),
        }
    }

    /// The next item, reading from the socket as needed.
    pub async fn next<T>(
        &mut self,
        parse: impl Fn(&[u8]) -> anyhow::Result<Option<(T, usize)>> + Copy,
    ) -> anyhow::Result<T> {
        loop {
            if let Some(item) = self.try_parse(parse)? {
                return Ok(item);
            }
            if self.read().await? == 0 {
                bail!("connection closed");
            }
        }
    }
}

/// One client connection.
pub struct Client {
    pub reader: Reader,
    pub wr: OwnedWriteHalf,
}

fn stream_header() -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{DOMAIN}' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    )
}

impl Client {
    /// Connect from `source` (a loopback address) and open the stream; returns after the
    /// server's `<stream:features>`.
    pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<(Client, Vec<u8>)> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream: TcpStream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut c = Client {
            reader: Reader::new(rd),
            wr,
        };
        let features = c.open_stream().await?;
        Ok((c, features))
    }

    /// Send our stream header and read the server's header and features.
    async fn open_stream(&mut self) -> anyhow::Result<Vec<u8>> {
        self.wr.write_all(stream_header().as_bytes()).await?;
        match self.next_item().await? {
            Item::Header => {}
            other => bail!("expected the stream header, got {other:?}"),
        }
        let features = self.next_element().await?;
        if name(&features) != b"stream:features" {
            bail!("expected stream features");
        }
        Ok(features)
    }

    /// The next top-level item, reading from the socket as needed.
    pub async fn next_item(&mut self) -> anyhow::Result<Item> {
        self.reader.next(split_item).await
    }

    async fn next_element(&mut self) -> anyhow::Result<Vec<u8>> {
        match self.next_item().await? {
            Item::Element(e) => Ok(e),
            other => bail!("stream ended: {other:?}"),
        }
    }

    /// The element answering `<iq id=id>`, skipping anything else (presence, messages).
    async fn iq_answer(&mut self, id: &str) -> anyhow::Result<Vec<u8>> {
        loop {
            let el = self.next_element().await?;
            if name(&el) == b"iq" && attr(&el, "id") == Some(id.as_bytes()) {
                return Ok(el);
            }
        }
    }

    /// In-band registration (XEP-0077) of `user` on this unauthenticated stream. Ok(true): the
    /// account was created; Ok(false): it already existed.
    pub async fn register(&mut self, user: &str, password: &str) -> anyhow::Result<bool> {
        let iq = format!(
            "<iq type='set' id='reg'><query xmlns='jabber:iq:register'>\
             <username>{user}</username><password>{password}</password></query></iq>"
        );
        self.wr.write_all(iq.as_bytes()).await?;
        let answer = self.iq_answer("reg").await?;
        match attr(&answer, "type") {
            Some(b"result") => Ok(true),
            Some(b"error") if find(&answer, b"<conflict").is_some() => Ok(false),
            _ => bail!("registration refused: {}", String::from_utf8_lossy(&answer)),
        }
    }

    /// Log in: SCRAM-SHA-1, stream restart, bind `resource`, initial presence. `features` are the
    /// ones the server offered on the fresh stream.
    pub async fn login(
        &mut self,
        features: &[u8],
        user: &str,
        password: &str,
        resource: &str,
    ) -> anyhow::Result<()> {
        if find(features, b"<mechanism>SCRAM-SHA-1</mechanism>").is_none() {
            bail!("server does not offer SCRAM-SHA-1");
        }
        let nonce = B64.encode(rand_bytes());
        let mut scram = Scram::new(user, password, &nonce);
        let auth = format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>{}</auth>",
            B64.encode(scram.client_first())
        );
        self.wr.write_all(auth.as_bytes()).await?;
        let challenge = self.next_element().await?;
        if name(&challenge) != b"challenge" {
            bail!("authentication failed: {}", String::from_utf8_lossy(&challenge));
        }
        let server_first = decode_b64_text(child_text(&challenge, "challenge").unwrap_or_default())?;
        let response = scram.client_final(&server_first)?;
        let response = format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            B64.encode(response)
        );
        self.wr.write_all(response.as_bytes()).await?;
        let success = self.next_element().await?;
        if name(&success) != b"success" {
            bail!("authentication failed: {}", String::from_utf8_lossy(&success));
        }
        scram.verify_server_final(&decode_b64_text(
            child_text(&success, "success").unwrap_or_default(),
        )?)?;
        self.open_stream().await?;
        let bind = format!(
            "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>"
        );
        self.wr.write_all(bind.as_bytes()).await?;
        let bound = self.iq_answer("bind").await?;
        if attr(&bound, "type") != Some(b"result") {
            bail!("resource binding refused: {}", String::from_utf8_lossy(&bound));
        }
        self.wr.write_all(b"<presence/>").await?;
        Ok(())
    }

    /// Close our stream (the polite way; a server keeps less state behind).
    pub async fn close(mut self) {
        let _ = self.wr.write_all(b"</stream:stream>").await;
        let _ = self.wr.shutdown().await;
    }
}

fn decode_b64_text(text: &[u8]) -> anyhow::Result<String> {
    let raw = B64.decode(text).context("SASL data is not base64")?;
    String::from_utf8(raw).context("SASL data is not UTF-8")
}

/// 18 bytes for a client nonce: unpredictable enough for a benchmark's login (this is the
/// load generator, not a client anyone keeps secrets in), without a random-number crate.
fn rand_bytes() -> [u8; 18] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 18];
    for chunk in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5802 section 5: user "user", password "pencil".
    #[test]
    fn scram_sha1_matches_rfc5802_example() {
        let mut s = Scram::new("user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(s.client_first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let fin = s
            .client_final("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            fin,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        s.verify_server_final("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
        assert!(s.verify_server_final("v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_err());
    }

    #[test]
    fn scram_refuses_a_nonce_the_server_did_not_extend() {
        let mut s = Scram::new("user", "pencil", "abc");
        assert!(s.client_final("r=xyz1,s=QSXCR+Q6sek8bf92,i=4096").is_err());
        assert!(s.client_final("r=abc,s=QSXCR+Q6sek8bf92,i=4096").is_err());
    }

    #[test]
    fn splits_a_stream_into_items() {
        let stream = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' id='x' \
            version='1.0'><stream:features><mechanisms><mechanism>SCRAM-SHA-1</mechanism>\
            </mechanisms><register/></stream:features> <message from='a@b/c' id='1>'>\
            <body>hi</body><x a=\"/>\"/></message><presence/></stream:stream>";
        let mut rest = &stream[..];
        let mut items = Vec::new();
        while let Some((item, used)) = split_item(rest).unwrap() {
            items.push(item);
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        assert_eq!(items.len(), 5);
        assert_eq!(items[0], Item::Header);
        let Item::Element(msg) = &items[2] else { panic!() };
        assert_eq!(name(msg), b"message");
        assert_eq!(attr(msg, "id"), Some(&b"1>"[..]));
        assert_eq!(attr(msg, "from"), Some(&b"a@b/c"[..]));
        assert_eq!(child_text(msg, "body"), Some(&b"hi"[..]));
        assert_eq!(items[3], Item::Element(b"<presence/>".to_vec()));
        assert_eq!(items[4], Item::Close);
    }

    #[test]
    fn an_incomplete_element_waits_for_more_bytes() {
        let full = b"<message><body>hi</body></message>";
        for cut in 0..full.len() {
            assert_eq!(split_item(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(split_item(b"</x>").is_err());
        assert!(split_item(b"text").is_err());
    }
}
