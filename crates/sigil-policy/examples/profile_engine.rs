//! Temporary profiling driver (not part of the crate).
#![allow(clippy::unwrap_used, reason = "scratch")]
#[path = "../tests/common/world.rs"]
#[allow(dead_code, reason = "scratch")]
mod world;
use sigil_policy::{Engine, PrincipalRef, Request};
use std::hint::black_box;
use world::{World, WorldSize};
fn main() {
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
    let engine = Engine::new(world.store.build_snapshot(1).unwrap());
    let requests = world.requests(4096, 0x5161_0b02);
    let n: usize = std::env::args()
        .nth(1)
        .map_or(20_000, |v| v.parse().unwrap());
    let started = std::time::Instant::now();
    for i in 0..n {
        let mix = &requests[i % requests.len()];
        black_box(engine.authorize(&Request {
            principal: PrincipalRef::Agent(&mix.agent),
            action: mix.action,
            resource: &mix.resource,
            context: serde_json::Value::Null,
        }));
    }
    eprintln!("{:.2?} per decision", started.elapsed() / n as u32);
}
