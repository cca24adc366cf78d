//! The end-to-end run of `bench ingest`: publishers (edge nodes) → embedded broker → the
//! in-process gateway sink → store → batches final on the validators; counted exactly, timed
//! per record.

use super::*;

use tokio::sync::{Barrier, watch};

/// How long publishing may go without a new `DACK` before the run is called stuck.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Consecutive failed ledger passes tolerated (transport hiccups) before the run fails.
const LEDGER_ERRORS_MAX: u32 = 50;
/// QoS 1 publishes a connection keeps in flight (waiting for the broker's PUBACK).
const PUBLISHER_INFLIGHT: u16 = 500;

/// What one end-to-end run measured.
pub(super) struct E2e {
    pub records_per_s: f64,
    /// Records/s from the first publish to the last `DACK` (durable at the gateway).
    pub durable_records_per_s: f64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub records: u64,
    pub accepted: u64,
    pub dacked: u64,
    pub committed: u64,
    pub batches: u64,
    pub publishers: usize,
    pub elapsed: Duration,
}

/// Counters shared by the publishers, the ledger loop and the progress lines.
#[derive(Default)]
struct Shared {
    dacked: AtomicU64,
    stop: AtomicBool,
}

/// When each batch became final (as the gateway's ledger loop saw it), and totals.
#[derive(Default)]
struct Finals {
    at: HashMap<u64, Instant>,
    records: u64,
}

/// An edge node's data frames' (device, seq), kept after the frames are published.
type FrameIds = Vec<(usize, u64)>;

impl Bench<'_> {
    pub(super) fn end_to_end(&self, name: &str, work: Workload) -> Result<E2e> {
        let gateway_name = format!("bench-{name}");
        let register = Payload::RegisterGateway(RegisterGateway {
            name: gateway_name.clone(),
        });
        submit_final(&self.client, OPERATOR, &self.operator_key, register).context("registering the gateway")?;
        let store = self.net.dir.join(&gateway_name);
        std::fs::create_dir_all(&store)?;
        let config = GatewayConfig {
            max_batch_age: Duration::from_millis(self.args.batch_ms),
            ..GatewayConfig::new(&gateway_name)
        };
        let gateway = Arc::new(Mutex::new(Gateway::open(&store.join("records.redb"), config)?));
        let directory = Arc::new(HttpDirectory::new(&self.net.apis[0])?);
        for d in &work.devices {
            // A running gateway has its registry cache warm.
            directory.refresh(&d.id)?;
        }
        let (rebirths, rebirths_rx) = std::sync::mpsc::channel();
        let sink = Arc::new(GatewaySink {
            gateway: gateway.clone(),
            directory,
            rebirths: Mutex::new(rebirths),
        });
        let shared = Arc::new(Shared::default());
        let ledger = {
            let submitter = ClientSubmitter::new(Client::new(&self.net.apis[0])?, OPERATOR, self.operator_key.clone());
            let (gateway, shared, records) = (gateway.clone(), shared.clone(), work.records as u64);
            let label = name.to_string();
            std::thread::Builder::new()
                .name("bench-ledger".into())
                .spawn(move || ledger_loop(&gateway, submitter, records, &shared, &label))?
        };
        let runtime = tokio::runtime::Runtime::new()?;
        let published = runtime.block_on(self.publish(&gateway_name, &work, sink, &shared));
        if published.is_err() {
            shared.stop.store(true, Ordering::SeqCst);
        }
        let finals = ledger.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let (started, ids, times, accepted, durable_at) = published?;
        let finals = finals?;
        ensure!(
            rebirths_rx.try_recv().is_err(),
            "a session gap: the gateway asked for a rebirth"
        );
        let latencies = latencies(&gateway, &work, &ids, &times, &finals)?;
        let ended = finals.at.values().max().copied().unwrap_or(started);
        let elapsed = ended.saturating_duration_since(started);
        let records = work.records as u64;
        Ok(E2e {
            records_per_s: records as f64 / elapsed.as_secs_f64().max(1e-9),
            durable_records_per_s: records as f64
                / durable_at.saturating_duration_since(started).as_secs_f64().max(1e-9),
            p50_ms: percentile(&latencies, 50),
            p99_ms: percentile(&latencies, 99),
            records,
            accepted,
            dacked: shared.dacked.load(Ordering::SeqCst),
            committed: finals.records,
            batches: finals.at.len() as u64,
            publishers: work.nodes.len(),
            elapsed,
        })
    }

    /// Subscribes the gateway, runs every edge node's publisher, and waits for every `DACK`.
    /// Returns the start instant, each node's frame ids and publish instants, how many records
    /// the gateway accepted, and when the last `DACK` arrived.
    async fn publish(
        &self,
        gateway_name: &str,
        work: &Workload,
        sink: Arc<GatewaySink>,
        shared: &Arc<Shared>,
    ) -> Result<(Instant, Vec<FrameIds>, Vec<Vec<Instant>>, u64, Instant)> {
        let addr = self.broker.addr();
        // One connection per group: rumqttd keeps at most 100 QoS 1 messages in flight to a
        // subscriber connection, and the gateway acks only once a record is durable.
        let mut subscribers = Vec::new();
        for (k, node) in work.nodes.iter().enumerate() {
            let mut config = SubscriberConfig::new(&addr.ip().to_string(), addr.port(), gateway_name);
            config.group = Some(node.group.clone());
            config.client_id = Some(format!("{gateway_name}-{k}"));
            subscribers.push(spawn_subscriber(config, sink.clone()).await?);
        }
        let barrier = Arc::new(Barrier::new(work.nodes.len() + 1));
        let mut ids = Vec::new();
        let mut tasks = Vec::new();
        for node in &work.nodes {
            ids.push(node.data.iter().map(|d| (d.device, d.seq)).collect::<FrameIds>());
            let job = NodeJob::new(node, work, &node.group, self.args.window);
            tasks.push(tokio::spawn(run_node(job, addr, barrier.clone(), shared.clone())));
        }
        tokio::time::timeout(SETUP_WAIT, barrier.wait())
            .await
            .context("the publishers did not connect")?;
        let started = Instant::now();
        let (mut times, mut durable_at) = (Vec::new(), started);
        for task in tasks {
            let (published, acked) = task.await??;
            times.push(published);
            durable_at = durable_at.max(acked);
        }
        let mut accepted = 0;
        for subscriber in subscribers {
            let stats = subscriber.stats();
            subscriber.shutdown().await;
            ensure!(
                stats.rejected == 0 && stats.malformed == 0 && stats.bad_topic == 0,
                "the gateway refused records: {stats:?}"
            );
            accepted += stats.accepted;
        }
        Ok((started, ids, times, accepted, durable_at))
    }
}

/// What an edge node's publisher task owns.
struct NodeJob {
    client_id: String,
    dack_filter: String,
    births: Vec<(String, Vec<u8>)>,
    /// (topic, frame) in publish order.
    data: Vec<(String, Vec<u8>)>,
    /// Records it may have without a `DACK`: the window of each of its devices.
    window: u64,
}

impl NodeJob {
    fn new(node: &Node, work: &Workload, group: &str, window: u64) -> NodeJob {
        let data = node
            .data
            .iter()
            .map(|d| (work.devices[d.device].topic.clone(), d.frame.clone()));
        NodeJob {
            client_id: format!("{group}-{}", node.edge),
            dack_filter: format!("{NAMESPACE}/{group}/{}/{}/+", MessageType::DAck, node.edge),
            births: node.births.clone(),
            data: data.collect(),
            window: window * node.devices.len() as u64,
        }
    }
}

/// One edge node: connect, subscribe to its `DACK`s, births, then (after the common start)
/// its records as fast as the broker and its devices' windows allow; returns each record's
/// publish instant and when the last `DACK` arrived.
async fn run_node(
    job: NodeJob,
    broker: std::net::SocketAddr,
    barrier: Arc<Barrier>,
    shared: Arc<Shared>,
) -> Result<(Vec<Instant>, Instant)> {
    let mut options = MqttOptions::new(job.client_id, broker.ip().to_string(), broker.port());
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(64 * 1024, 64 * 1024)
        .set_inflight(PUBLISHER_INFLIGHT);
    let (client, event_loop) = AsyncClient::new(options, PUBLISHER_QUEUE);
    let (acked_tx, mut acked) = watch::channel(0u64);
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let poller = tokio::spawn(poll_node(event_loop, acked_tx, ready_tx, shared));
    client.subscribe(job.dack_filter, QoS::AtMostOnce).await?;
    tokio::time::timeout(SETUP_WAIT, ready)
        .await
        .context("no SUBACK from the broker")??;
    for (topic, frame) in job.births {
        client.publish(topic, QoS::AtLeastOnce, false, frame).await?;
    }
    barrier.wait().await;
    let total = job.data.len() as u64;
    let mut published_at = Vec::with_capacity(job.data.len());
    let mut known_acked = 0;
    for (i, (topic, frame)) in job.data.into_iter().enumerate() {
        let i = i as u64;
        if i >= known_acked + job.window {
            known_acked = wait_acked(&mut acked, i + 1 - job.window).await?;
        }
        published_at.push(Instant::now());
        client.publish(topic, QoS::AtLeastOnce, false, frame).await?;
    }
    wait_acked(&mut acked, total).await?;
    let all_acked = Instant::now();
    client.disconnect().await?;
    let _ = poller.await;
    Ok((published_at, all_acked))
}

/// Waits until at least `target` records are `DACK`ed; fails after [`STALL_TIMEOUT`].
async fn wait_acked(acked: &mut watch::Receiver<u64>, target: u64) -> Result<u64> {
    let waited = tokio::time::timeout(STALL_TIMEOUT, acked.wait_for(|&a| a >= target)).await;
    match waited {
        Ok(Ok(a)) => Ok(*a),
        Ok(Err(_)) => bail!("the publisher's connection closed before every record was acknowledged"),
        Err(_) => bail!("no DACK progress for {STALL_TIMEOUT:?} (waiting for {target})"),
    }
}

/// Drives a publisher's connection: confirms the subscription, sums the `DACK`s (the highest
/// durable seq of each device's stream).
async fn poll_node(
    mut event_loop: rumqttc::EventLoop,
    acked: watch::Sender<u64>,
    ready: tokio::sync::oneshot::Sender<()>,
    shared: Arc<Shared>,
) {
    let mut ready = Some(ready);
    let mut heads: HashMap<DeviceId, u64> = HashMap::new();
    let mut sum = 0;
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Some((device, seq)) = dack(&p) else { continue };
                let head = heads.entry(device).or_default();
                if seq > *head {
                    sum += seq - *head;
                    shared.dacked.fetch_add(seq - *head, Ordering::Relaxed);
                    *head = seq;
                    acked.send_replace(sum);
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The device and durable seq of a `DACK` on the data stream.
fn dack(p: &rumqttc::Publish) -> Option<(DeviceId, u64)> {
    let topic = Topic::parse(&p.topic).ok()?;
    let ack = DurableAck::decode(&p.payload).ok()?;
    (topic.message_type == MessageType::DAck && ack.stream == SIM_STREAM).then_some((topic.device_id().ok()?, ack.seq))
}

/// Cuts due batches, submits them and polls until `expected` records are in final batches.
/// The gateway lock is held only to cut and to record outcomes (`submit_batches_shared`).
fn ledger_loop(
    gateway: &Mutex<Gateway>,
    mut submitter: ClientSubmitter,
    expected: u64,
    shared: &Shared,
    label: &str,
) -> Result<Finals> {
    let started = Instant::now();
    let mut finals = Finals::default();
    let mut sizes = HashMap::new();
    let (mut errors, mut last_progress) = (0, Instant::now());
    while finals.records < expected {
        ensure!(!shared.stop.load(Ordering::SeqCst), "publishing failed");
        ensure!(
            started.elapsed() < RUN_TIMEOUT,
            "records not final within {RUN_TIMEOUT:?}"
        );
        cut_due(gateway, &mut sizes)?;
        match submit_batches_shared(gateway, &mut submitter) {
            Ok(report) => {
                errors = 0;
                let now = Instant::now();
                for seq in report.committed {
                    finals.at.insert(seq, now);
                    finals.records += sizes.get(&seq).copied().unwrap_or(0);
                }
            }
            Err(e) => {
                errors += 1;
                ensure!(errors < LEDGER_ERRORS_MAX, "ledger pass failed {errors} times: {e}");
                tracing::warn!(error = %e, "ledger pass failed; retrying");
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            let dacked = shared.dacked.load(Ordering::Relaxed);
            progress!(
                "  {label}: {dacked}/{expected} records durable, {} final ({:.1} s)",
                finals.records,
                started.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(LEDGER_TICK);
    }
    Ok(finals)
}

/// Cuts every batch that is due; remembers each batch's record count.
fn cut_due(gateway: &Mutex<Gateway>, sizes: &mut HashMap<u64, u64>) -> Result<()> {
    let mut g = gateway.lock().map_err(|_| anyhow::anyhow!("gateway lock poisoned"))?;
    while g.batch_due(Instant::now()) {
        match g.cut_batch()? {
            Some(batch) => sizes.insert(batch.batch_seq, u64::from(batch.record_count)),
            None => break,
        };
    }
    Ok(())
}

/// Each record's publish → batch-final latency in ms (every record must be in a final batch).
fn latencies(
    gateway: &Mutex<Gateway>,
    work: &Workload,
    ids: &[FrameIds],
    times: &[Vec<Instant>],
    finals: &Finals,
) -> Result<Vec<u64>> {
    let g = gateway.lock().map_err(|_| anyhow::anyhow!("gateway lock poisoned"))?;
    let mut out = Vec::with_capacity(work.records);
    for (ids, times) in ids.iter().zip(times) {
        ensure!(ids.len() == times.len(), "a publisher stopped early");
        for (&(device, seq), published) in ids.iter().zip(times) {
            let chain = ChainKey {
                device: work.devices[device].id,
                stream: SIM_STREAM.into(),
            };
            let batch = g
                .store()
                .record_batch(&chain, seq)?
                .context("a record is in no batch")?;
            let at = finals.at.get(&batch).context("a record's batch is not final")?;
            out.push(at.saturating_duration_since(*published).as_millis() as u64);
        }
    }
    ensure!(
        out.len() == work.records,
        "{} of {} records timed",
        out.len(),
        work.records
    );
    out.sort_unstable();
    Ok(out)
}

/// The `p`th percentile of sorted values (nearest rank).
fn percentile(sorted: &[u64], p: usize) -> u64 {
    match sorted.len() {
        0 => 0,
        n => sorted[((n * p).div_ceil(100)).clamp(1, n) - 1],
    }
}
