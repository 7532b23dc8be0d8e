//! Decision latency of the engine against plain Cedar on the same requests.
//!
//! The population has 10,000 agents and 1,000 policies: 975 entitlements spread over random
//! agents, 20 global custom policies and 5 custom policies scoped to one agent, plus the built-in
//! `forbid`. Three criterion benchmarks decide the same fixed request mix:
//!
//! - `engine`: `Engine::authorize`, including the entity and request construction it does;
//! - `cedar_flat`: `Authorizer::is_authorized` on the full flat policy set (the naive baseline);
//! - `cedar_principal_slice`: `Authorizer::is_authorized` on the policies whose principal scope
//!   can match the agent (its own policies, the global ones and the built-in), the fair floor;
//! - `cedar_engine_policies`: `Authorizer::is_authorized` on exactly the policies the engine
//!   evaluates for the request (`Snapshot::policies_for`), in one set, which isolates the engine's
//!   own overhead.
//!
//! The Cedar baselines get entities and requests built before the timed loop, so they measure
//! evaluation alone, while the engine builds them per request. After the criterion runs, a latency report times 100,000 single decisions of
//! the engine on one thread and prints percentiles and decisions per second.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "the benchmark aborts on invalid fixtures"
)]

#[path = "../tests/common/world.rs"]
#[allow(dead_code, reason = "the benchmark does not use every helper")]
mod world;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cedar_policy::{Authorizer, Context, Entities, PolicySet, PrincipalConstraint};
use criterion::Criterion;
use sigil_policy::{AGENT_TYPE, Engine, PrincipalRef, Request, Snapshot};
use world::{MixRequest, World, WorldSize};

const MIX_SIZE: usize = 4_096;
const LATENCY_SAMPLES: usize = 100_000;

/// A request of the mix with everything plain Cedar needs, built in advance.
struct Prepared {
    mix: MixRequest,
    request: cedar_policy::Request,
    entities: Entities,
    /// The policies the engine evaluates for this request.
    engine_policies: PolicySet,
}

fn generate() -> (Engine, Vec<MixRequest>) {
    let started = Instant::now();
    let world = World::generate(
        WorldSize {
            agents: 10_000,
            owners: 500,
            entitlements: 975,
            global_policies: 20,
            agent_policies: 5,
        },
        0x5161_0b01,
    );
    let generated = started.elapsed();

    let memory_before = resident_memory_mib();
    let started = Instant::now();
    let snapshot = world.store.build_snapshot(1).unwrap();
    let built = started.elapsed();
    let memory_after = resident_memory_mib();
    eprintln!(
        "population: {} agents, {} policies in the flat set; generated in {generated:.2?}, \
         snapshot built in {built:.2?}, resident memory {memory_before:.0} MiB before the \
         snapshot and {memory_after:.0} MiB after",
        snapshot.agent_count(),
        snapshot.policy_set().num_of_policies(),
    );
    let requests = world.requests(MIX_SIZE, 0x5161_0b02);
    (Engine::new(snapshot), requests)
}

/// Returns the resident set size of this process in MiB, or NaN where `/proc` is missing.
fn resident_memory_mib() -> f64 {
    const PAGE_BYTES: f64 = 4096.0;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |pages| pages * PAGE_BYTES / (1024.0 * 1024.0))
}

fn prepare(snapshot: &Snapshot, requests: &[MixRequest]) -> Vec<Prepared> {
    requests
        .iter()
        .map(|mix| {
            let agent = snapshot.agent_entity(mix.agent.as_str()).unwrap().clone();
            let resource = snapshot.resource_entity(&mix.resource).unwrap();
            let request = cedar_policy::Request::new(
                agent.uid(),
                format!("Sigil::Action::\"{}\"", mix.action)
                    .parse()
                    .unwrap(),
                resource.uid(),
                Context::empty(),
                None,
            )
            .unwrap();
            let ids = snapshot
                .policies_for(mix.agent.as_str(), mix.action, &mix.resource)
                .unwrap();
            let engine_policies = snapshot
                .policy_set()
                .policies()
                .filter(|policy| ids.iter().any(|id| id == AsRef::<str>::as_ref(policy.id())));
            Prepared {
                mix: mix.clone(),
                request,
                entities: Entities::from_entities([agent, resource], None).unwrap(),
                engine_policies: PolicySet::from_policies(engine_policies.cloned()).unwrap(),
            }
        })
        .collect()
}

/// Builds, for each agent of the mix, the flat-set policies whose principal scope can match it.
fn principal_slices(flat: &PolicySet, requests: &[MixRequest]) -> HashMap<String, PolicySet> {
    let mut slices = HashMap::new();
    for mix in requests {
        if slices.contains_key(mix.agent.as_str()) {
            continue;
        }
        let policies = flat
            .policies()
            .filter(|policy| match policy.principal_constraint() {
                PrincipalConstraint::Eq(uid) => {
                    uid.type_name().to_string() != AGENT_TYPE
                        || uid.id().unescaped() == mix.agent.as_str()
                }
                _ => true,
            });
        let set = PolicySet::from_policies(policies.cloned()).unwrap();
        slices.insert(mix.agent.as_str().to_owned(), set);
    }
    slices
}

fn engine_request(mix: &MixRequest) -> Request<'_> {
    Request {
        principal: PrincipalRef::Agent(&mix.agent),
        action: mix.action,
        resource: &mix.resource,
        context: serde_json::Value::Null,
    }
}

fn bench_decisions(criterion: &mut Criterion, engine: &Engine, requests: &[MixRequest]) {
    let snapshot = engine.snapshot();
    let prepared = prepare(&snapshot, requests);
    let flat = snapshot.policy_set();
    let slices = principal_slices(flat, requests);
    let authorizer = Authorizer::new();

    let allowed = requests
        .iter()
        .filter(|mix| engine.authorize(&engine_request(mix)).is_allowed())
        .count();
    let slice_sizes: usize = prepared
        .iter()
        .map(|item| slices[item.mix.agent.as_str()].num_of_policies())
        .sum();
    let evaluated: usize = requests
        .iter()
        .map(|mix| {
            snapshot
                .policies_for(mix.agent.as_str(), mix.action, &mix.resource)
                .map_or(0, |ids| ids.len())
        })
        .sum();
    eprintln!(
        "request mix: {} requests, {allowed} allowed; mean policies per request: flat {}, \
         principal slice {:.1}, engine {:.1}",
        requests.len(),
        flat.num_of_policies(),
        slice_sizes as f64 / requests.len() as f64,
        evaluated as f64 / requests.len() as f64,
    );

    let mut group = criterion.benchmark_group("decision");
    let mut next = 0;
    group.bench_function("engine", |bencher| {
        bencher.iter(|| {
            let mix = &requests[next % requests.len()];
            next += 1;
            black_box(engine.authorize(&engine_request(mix)))
        });
    });
    let mut next = 0;
    group.bench_function("cedar_flat", |bencher| {
        bencher.iter(|| {
            let item = &prepared[next % prepared.len()];
            next += 1;
            black_box(authorizer.is_authorized(&item.request, flat, &item.entities))
        });
    });
    let mut next = 0;
    group.bench_function("cedar_principal_slice", |bencher| {
        bencher.iter(|| {
            let item = &prepared[next % prepared.len()];
            next += 1;
            let slice = &slices[item.mix.agent.as_str()];
            black_box(authorizer.is_authorized(&item.request, slice, &item.entities))
        });
    });
    let mut next = 0;
    group.bench_function("cedar_engine_policies", |bencher| {
        bencher.iter(|| {
            let item = &prepared[next % prepared.len()];
            next += 1;
            black_box(authorizer.is_authorized(
                &item.request,
                &item.engine_policies,
                &item.entities,
            ))
        });
    });
    group.finish();
}

/// Times single engine decisions on this thread and prints percentiles and throughput.
fn latency_report(engine: &Engine, requests: &[MixRequest]) {
    // Warm caches and the allocator before sampling.
    for mix in requests {
        black_box(engine.authorize(&engine_request(mix)));
    }

    let mut samples: Vec<Duration> = Vec::with_capacity(LATENCY_SAMPLES);
    let started = Instant::now();
    for index in 0..LATENCY_SAMPLES {
        let mix = &requests[index % requests.len()];
        let before = Instant::now();
        black_box(engine.authorize(&engine_request(mix)));
        samples.push(before.elapsed());
    }
    let total = started.elapsed();
    samples.sort();

    let percentile = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    eprintln!(
        "engine latency over {LATENCY_SAMPLES} decisions on one thread: p50 {:.2?}, p90 {:.2?}, \
         p99 {:.2?}, p99.9 {:.2?}, max {:.2?}; {:.0} decisions/s (timer overhead included)",
        percentile(0.50),
        percentile(0.90),
        percentile(0.99),
        percentile(0.999),
        samples[samples.len() - 1],
        LATENCY_SAMPLES as f64 / total.as_secs_f64(),
    );
}

fn main() {
    let (engine, requests) = generate();
    let mut criterion = Criterion::default().configure_from_args();
    bench_decisions(&mut criterion, &engine, &requests);
    criterion.final_summary();

    // `cargo test --benches` runs this binary without `--bench`; skip the long report there.
    if std::env::args().any(|arg| arg == "--bench") {
        latency_report(&engine, &requests);
    }
}
