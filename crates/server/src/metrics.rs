//! Prometheus metrics. Counts and timings only: no account, device, number or content ever
//! becomes a label.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which limit refused a verification-code request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum CodeRefusal {
    /// `limits.registration_per_ip`.
    Address,
    /// `limits.code_per_phone`.
    Number,
    /// `limits.code_per_prefix`.
    Prefix,
    /// `limits.code_global`: the server-wide cap on codes sent (SMS pumping).
    Global,
}

/// Lower-case label values (`reason="global"`), as Prometheus names go.
impl EncodeLabelValue for CodeRefusal {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            CodeRefusal::Address => "address",
            CodeRefusal::Number => "number",
            CodeRefusal::Prefix => "prefix",
            CodeRefusal::Global => "global",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeRefusalLabels {
    reason: CodeRefusal,
}

pub struct Metrics {
    registry: Registry,
    /// Verification-code requests refused, by the limit that refused them.
    codes_refused: Family<CodeRefusalLabels, Counter>,
    pub connections: Gauge,
    pub sessions: Gauge,
    pub messages_in: Counter,
    pub messages_out: Counter,
    pub acks: Counter,
    pub rejected_overload: Counter,
    pub rejected_rate_limit: Counter,
    pub registrations: Counter,
    pub malformed_frames: Counter,
    /// Conversation commits ordered (accepted).
    pub commits: Counter,
    /// Proof-of-work challenges solved (the abuse engine's "challenge" met by a client).
    pub challenges_solved: Counter,
    /// Seconds from receiving a send to it being durable.
    pub send_latency: Histogram,
    /// Seconds from acceptance to the push being written to the recipient's socket.
    pub delivery_latency: Histogram,
    pub store_backlog: Gauge,
    pub queued_messages: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sirr");
        let m = Metrics {
            connections: Gauge::default(),
            sessions: Gauge::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            acks: Counter::default(),
            rejected_overload: Counter::default(),
            rejected_rate_limit: Counter::default(),
            registrations: Counter::default(),
            codes_refused: Family::default(),
            malformed_frames: Counter::default(),
            commits: Counter::default(),
            challenges_solved: Counter::default(),
            send_latency: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            delivery_latency: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            store_backlog: Gauge::default(),
            queued_messages: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("connections", "Open WebSocket connections", m.connections.clone());
        registry.register("sessions", "Authenticated device sessions", m.sessions.clone());
        registry.register(
            "messages_in",
            "Messages accepted (one per send)",
            m.messages_in.clone(),
        );
        registry.register(
            "messages_out",
            "Envelopes pushed to devices",
            m.messages_out.clone(),
        );
        registry.register("acks", "Envelopes acknowledged by devices", m.acks.clone());
        registry.register(
            "rejected_overload",
            "Requests refused at capacity",
            m.rejected_overload.clone(),
        );
        registry.register(
            "rejected_rate_limit",
            "Requests refused by a rate limit",
            m.rejected_rate_limit.clone(),
        );
        registry.register("registrations", "Devices registered", m.registrations.clone());
        registry.register(
            "codes_refused",
            "Verification-code requests refused, by the limit that refused them",
            m.codes_refused.clone(),
        );
        registry.register(
            "malformed_frames",
            "Frames that failed to decode",
            m.malformed_frames.clone(),
        );
        registry.register(
            "commits",
            "Conversation commits accepted (one per epoch)",
            m.commits.clone(),
        );
        registry.register(
            "challenges_solved",
            "Proof-of-work challenges solved by clients",
            m.challenges_solved.clone(),
        );
        registry.register(
            "send_latency_seconds",
            "Send received to durable",
            m.send_latency.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "Send accepted to pushed to a device",
            m.delivery_latency.clone(),
        );
        registry.register(
            "store_write_backlog",
            "Writes waiting for the store",
            m.store_backlog.clone(),
        );
        registry.register(
            "queued_messages",
            "Envelopes waiting in device queues",
            m.queued_messages.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Count a verification-code request refused by `reason`'s limit.
    pub fn code_refused(&self, reason: CodeRefusal) {
        self.codes_refused
            .get_or_create(&CodeRefusalLabels { reason })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
