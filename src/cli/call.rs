//! `ketenpoort call`: a small client for trying the gateway by hand over mutual TLS, with a
//! party's certificate from the dev PKI. Each subcommand is one RPC; the response is printed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use ketenpoort::grpc::ACTOR_METADATA;
use ketenpoort::proto::v1 as pb;

/// Call the gateway as a party.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The gateway address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// The PKI directory holding ca.pem and parties/<id>.pem|.key.
    #[arg(long, default_value = "./var/pki")]
    pki: PathBuf,
    /// The calling party (its certificate is used).
    #[arg(long)]
    party: String,
    /// The staff member making the call (sent as `ketenpoort-actor`).
    #[arg(long)]
    actor: String,
    /// The RPC.
    #[command(subcommand)]
    rpc: Rpc,
}

/// The RPCs `call` can make.
#[derive(Debug, Subcommand)]
enum Rpc {
    /// Policies/ListAgreements.
    Agreements,
    /// Audit/GetCheckpoint.
    Checkpoint,
    /// Exchange/RegisterReference.
    Register {
        /// National register or BIS number.
        #[arg(long)]
        subject: String,
        /// The holder's own file reference.
        #[arg(long, default_value = "")]
        holder_reference: String,
    },
    /// Exchange/Lookup.
    Lookup {
        /// National register or BIS number.
        #[arg(long)]
        subject: String,
        /// Purpose from the vocabulary.
        #[arg(long)]
        purpose: String,
        /// Written justification.
        #[arg(long, default_value = "")]
        justification: String,
    },
    /// Exchange/RequestContext.
    Request {
        /// National register or BIS number.
        #[arg(long)]
        subject: String,
        /// The holder asked.
        #[arg(long)]
        holder: String,
        /// Purpose from the vocabulary.
        #[arg(long)]
        purpose: String,
        /// A field, optionally `field:form`; may be repeated.
        #[arg(long = "field", required = true)]
        fields: Vec<String>,
        /// Written justification.
        #[arg(long, default_value = "")]
        justification: String,
    },
    /// Exchange/ListIncoming.
    Incoming,
    /// Exchange/Respond with text values (`field=value`; dates as YYYY-MM-DD).
    Respond {
        /// The ticket.
        #[arg(long)]
        ticket: String,
        /// `field=value`; may be repeated.
        #[arg(long = "value", required = true)]
        values: Vec<String>,
    },
    /// Exchange/GetResult.
    Result {
        /// The ticket.
        #[arg(long)]
        ticket: String,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 0)]
        wait: i64,
    },
    /// Exchange/ListInbox.
    Inbox,
}

/// Runs `call`.
pub fn run(args: CallArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(call(args))
}

async fn channel(args: &CallArgs) -> Result<Channel> {
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
    };
    let ca = read(args.pki.join("ca.pem"))?;
    let cert = read(args.pki.join("parties").join(format!("{}.pem", args.party)))?;
    let key_path = args.pki.join("parties").join(format!("{}.key", args.party));
    let key = ketenpoort::secret_file::read(&key_path)
        .with_context(|| format!("cannot read {}", key_path.display()))?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key))
        .domain_name("localhost");
    Channel::from_shared(format!("https://{}", args.addr))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", args.addr))
}

fn subject(number: &str) -> Option<pb::Subject> {
    Some(pb::Subject {
        number: number.to_owned(),
    })
}

/// `field=value`: a date when it parses as YYYY-MM-DD, else text.
fn entry(spec: &str) -> Result<pb::FieldEntry> {
    let Some((field, value)) = spec.split_once('=') else {
        bail!("--value wants field=value, got {spec:?}");
    };
    let date = time::Date::parse(
        value,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok();
    let kind = match date {
        Some(d) => pb::field_value::Kind::Date(pb::Date {
            year: d.year(),
            month: i32::from(u8::from(d.month())),
            day: i32::from(d.day()),
        }),
        None => pb::field_value::Kind::Text(value.to_owned()),
    };
    Ok(pb::FieldEntry {
        field: field.to_owned(),
        value: Some(pb::FieldValue { kind: Some(kind) }),
    })
}

/// The actor named in every request.
struct Actor(tonic::metadata::AsciiMetadataValue);

impl Actor {
    /// A request carrying the actor metadata.
    fn req<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert(ACTOR_METADATA, self.0.clone());
        request
    }
}

async fn call(args: CallArgs) -> Result<()> {
    let channel = channel(&args).await?;
    let actor = Actor(
        args.actor
            .parse()
            .context("--actor must be printable ASCII")?,
    );
    let mut exchange = pb::exchange_client::ExchangeClient::new(channel.clone());
    let printed = match &args.rpc {
        Rpc::Agreements => format!(
            "{:#?}",
            pb::policies_client::PoliciesClient::new(channel.clone())
                .list_agreements(actor.req(pb::ListAgreementsRequest {}))
                .await?
                .into_inner()
        ),
        Rpc::Checkpoint => {
            let cp = pb::audit_client::AuditClient::new(channel.clone())
                .get_checkpoint(actor.req(pb::GetCheckpointRequest {}))
                .await?
                .into_inner();
            format!("{}\nverifier keys: {:?}", cp.checkpoint, cp.verifier_keys)
        }
        Rpc::Register {
            subject: s,
            holder_reference,
        } => format!(
            "{:#?}",
            exchange
                .register_reference(actor.req(pb::RegisterReferenceRequest {
                    subject: subject(s),
                    holder_reference: holder_reference.clone(),
                }))
                .await?
                .into_inner()
        ),
        Rpc::Lookup {
            subject: s,
            purpose,
            justification,
        } => format!(
            "{:#?}",
            exchange
                .lookup(actor.req(pb::LookupRequest {
                    subject: subject(s),
                    purpose: purpose.clone(),
                    justification: justification.clone(),
                }))
                .await?
                .into_inner()
        ),
        Rpc::Request {
            subject: s,
            holder,
            purpose,
            fields,
            justification,
        } => format!(
            "{:#?}",
            exchange
                .request_context(
                    actor.req(pb::RequestContextRequest {
                        subject: subject(s),
                        holder: holder.clone(),
                        purpose: purpose.clone(),
                        fields: fields
                            .iter()
                            .map(|f| {
                                let (field, form) = f.split_once(':').unwrap_or((f, ""));
                                pb::FieldRequest {
                                    field: field.to_owned(),
                                    form: form.to_owned(),
                                }
                            })
                            .collect(),
                        justification: justification.clone(),
                    })
                )
                .await?
                .into_inner()
        ),
        Rpc::Incoming => format!(
            "{:#?}",
            exchange
                .list_incoming(actor.req(pb::ListIncomingRequest::default()))
                .await?
                .into_inner()
        ),
        Rpc::Respond { ticket, values } => format!(
            "{:#?}",
            exchange
                .respond(actor.req(pb::RespondRequest {
                    ticket_id: ticket.clone(),
                    fields: values.iter().map(|v| entry(v)).collect::<Result<_>>()?,
                }))
                .await?
                .into_inner()
        ),
        Rpc::Result { ticket, wait } => format!(
            "{:#?}",
            exchange
                .get_result(actor.req(pb::GetResultRequest {
                    ticket_id: ticket.clone(),
                    wait: Some(prost_types::Duration {
                        seconds: *wait,
                        nanos: 0,
                    }),
                }))
                .await?
                .into_inner()
        ),
        Rpc::Inbox => format!(
            "{:#?}",
            exchange
                .list_inbox(actor.req(pb::ListInboxRequest::default()))
                .await?
                .into_inner()
        ),
    };
    println!("{printed}");
    Ok(())
}
