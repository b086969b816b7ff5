//! kill -9 of a serving gateway: `ketenpoort serve` runs as a child process on 127.0.0.1 (port 0)
//! while context requests arrive; it is SIGKILLed with requests in flight and started again on the
//! same data directory. Every request the gateway answered must still be pending for its holder
//! (the ticket is durable with its entry, and the holder's pending-request index, kept in memory,
//! is rebuilt from the tickets on start), and the audit log must verify.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{req, subject, subject_number};
use ketenpoort::client::{ClientTls, connect};
use ketenpoort::proto::v1 as pb;

const BIN: &str = env!("CARGO_BIN_EXE_ketenpoort");
const POLICE: &str = "pz-gent";
const CAW: &str = "caw-oost-vlaanderen";
const FJC: &str = "fjc-oost-vlaanderen";
const SUBJECTS: u32 = 8;

/// Starts `ketenpoort serve` on `config` and returns it with the address it printed.
fn serve(config: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("serve printed its address before exiting")
            .expect("a line");
        if let Some(rest) = line.strip_prefix("ketenpoort listening on ") {
            break rest
                .split_whitespace()
                .next()
                .expect("an address")
                .to_owned();
        }
    };
    // Keep reading (and dropping) its output, so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, format!("https://{address}"))
}

async fn channel(url: &str, pki: &Path, party: &str) -> tonic::transport::Channel {
    let tls = ClientTls::from_pki_dir(pki, party).expect("client certificate");
    connect(url, &tls).await.expect("connects")
}

fn context_request(seq: u32) -> pb::RequestContextRequest {
    pb::RequestContextRequest {
        subject: subject(seq % SUBJECTS),
        holder: CAW.into(),
        purpose: "intrafamily-violence".into(),
        fields: vec![pb::FieldRequest {
            field: "subject.birth_date".into(),
            form: String::new(),
        }],
        justification: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_requests_survive_kill_9_and_stay_pending_for_their_holder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("var");
    let config = dir.path().join("ketenpoort.toml");
    std::fs::write(
        &config,
        format!(
            "address = \"127.0.0.1:0\"\ndata_dir = {:?}\npolicies = {:?}\n",
            data.display().to_string(),
            common::policies_dir().display().to_string()
        ),
    )
    .expect("config");
    let pki = data.join("pki");

    let (mut first, url) = serve(&config);
    let fjc = channel(&url, &pki, FJC).await;
    pb::grounds_client::GroundsClient::new(fjc)
        .open_case(req(pb::OpenCaseRequest {
            case_id: String::new(),
            purpose: "intrafamily-violence".into(),
            participants: vec![POLICE.into(), CAW.into(), FJC.into()],
            subjects: (0..SUBJECTS)
                .map(|s| pb::Subject {
                    number: subject_number(s),
                })
                .collect(),
            agreement: "casusoverleg-ifg".into(),
            instrument: "pk-ovl-fjc-2023-01".into(),
        }))
        .await
        .expect("case opens");

    // Eight callers send requests until the gateway is killed; each answered ticket is noted.
    let police = channel(&url, &pki, POLICE).await;
    let (tx, mut answered) = tokio::sync::mpsc::unbounded_channel::<String>();
    let callers: Vec<_> = (0..8u32)
        .map(|c| {
            let mut client = pb::exchange_client::ExchangeClient::new(police.clone());
            let tx = tx.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    match client
                        .request_context(req(context_request(c * 1000 + n)))
                        .await
                    {
                        Ok(answer) => {
                            if tx.send(answer.into_inner().ticket_id).is_err() {
                                break;
                            }
                        }
                        // The gateway is gone: whatever was in flight was never answered.
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let mut tickets = BTreeSet::new();
    while tickets.len() < 150 {
        tickets.insert(answered.recv().await.expect("answers before the kill"));
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    for caller in callers {
        caller.await.expect("caller ends");
    }
    while let Ok(ticket) = answered.try_recv() {
        tickets.insert(ticket);
    }

    // Started again: every answered request is pending for the CAW.
    let (mut second, url) = serve(&config);
    let mut caw = pb::exchange_client::ExchangeClient::new(channel(&url, &pki, CAW).await);
    let mut pending = BTreeSet::new();
    let mut page_token = String::new();
    loop {
        let page = caw
            .list_incoming(req(pb::ListIncomingRequest {
                page_size: 100,
                page_token,
            }))
            .await
            .expect("incoming")
            .into_inner();
        pending.extend(page.requests.into_iter().map(|r| r.ticket_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let lost: Vec<&String> = tickets.difference(&pending).collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered requests are not pending after the kill, e.g. {:?}",
        lost.len(),
        tickets.len(),
        &lost[..lost.len().min(3)]
    );
    second.kill().expect("SIGKILL");
    second.wait().expect("reaped");

    let verify = Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .expect("audit verify runs");
    assert!(
        verify.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
