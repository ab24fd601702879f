//! `decide` allocates nothing, nor does writing its label on an outbound request: a
//! counting global allocator over 5,000 decisions.
//!
//! This file is its own test binary, and the allocator counts only what the test's own
//! thread allocates while counting: the test harness's thread, going on with its own
//! bookkeeping after starting the test, is not counted (under load it once was).
#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only forwards to System.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{design, req};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn five_thousand_decisions_allocate_nothing() {
    let gray = design();
    let requests = [
        req("/", &[("x-app-version", "beta")]),
        req(
            "/",
            &[("x-user-tier", "premium"), ("x-activity-level", "high")],
        ),
        req("/", &[("x-user-id", "42"), ("accept", "*/*")]),
        req("/", &[]),
    ];
    // A real regex: its per-thread match cache is made on this thread's first match.
    let regex = common::gray(
        "versions: [stable, canary]\nroutes:\n  - { name: tiers, match: { headers: [{ name: x-user-tier, regex: '^(gold|platinum)-[0-9]+$' }] }, to: canary }\n",
    );
    let tiers = [
        req("/", &[("x-user-tier", "platinum-42")]),
        req("/", &[("x-user-tier", "bronze-1")]),
    ];
    // A route copying half its requests to the canary: its draw has a per-thread counter.
    let mirrored = common::gray(
        "versions: [stable, canary]\nroutes:\n  - { name: all, to: stable, mirror: { to: canary, percent: 50 } }\n",
    );
    let _ = mirrored.decide(&requests[3]);
    // A split giving new clients a key: deciding draws it (the thread's generator is made
    // on its first draw); only building its `Set-Cookie`, once per new client, allocates.
    let visitors = common::gray(
        "versions: [stable, canary]\nroutes:\n  - { name: v, split: { by: { cookie: uid }, weights: { stable: 50, canary: 50 }, set_cookie: {} } }\n",
    );
    let returning = req("/", &[("cookie", "uid=0123456789abcdef")]);
    assert!(visitors.decide(&requests[3]).set_cookie().is_some());
    // Client addresses: an office route and a split by address, behind proxies whose
    // forwarding header is read (one line, and repeated).
    let clients = common::gray(
        "real_ip: { trusted: [10.0.0.0/8] }\nversions: [stable, canary]\nroutes:\n  - { name: office, match: { client_ip: { cidr: [198.51.100.0/24] } }, to: canary }\n  - { name: rest, split: { by: client_ip, weights: { stable: 50, canary: 50 } } }\n",
    );
    let mut proxied = [
        req("/", &[("x-forwarded-for", "203.0.113.9, 10.0.0.1")]),
        req(
            "/",
            &[
                ("x-forwarded-for", "198.51.100.4"),
                ("x-forwarded-for", "10.0.0.1"),
            ],
        ),
    ];
    for r in &mut proxied {
        r.extensions_mut()
            .insert(gray_core::PeerAddr(([10, 0, 0, 2], 4000).into()));
    }
    // Warm up: arc-swap registers this thread on its first load, the unkeyed split makes
    // this thread's counter, the regex its match cache.
    let _ = gray.decide(&requests[3]);
    let _ = clients.decide(&proxied[0]);
    for r in &tiers {
        let _ = regex.decide(r);
    }

    // An outbound request's headers, reused (a client builds a fresh map per call).
    let mut outbound = http::HeaderMap::with_capacity(8);
    let propagation = gray_core::adapter::Propagation::default();

    COUNTING.set(true);
    let mut canary = 0;
    for i in 0..5_000 {
        let d = gray.decide(&requests[i % requests.len()]);
        canary += usize::from(d.version() == "canary");
        let ctx = d.context(); // a pointer copy
        let label = d.label_value().clone(); // what adapters put on the request
        std::hint::black_box((&ctx, &label));
        // What a client adapter does inside the request: label header and baggage.
        outbound.clear();
        propagation.apply(&ctx, &mut outbound);
        assert_eq!(outbound.len(), 2);
        // Baggage that already says so (a second client layer, a propagated baggage) is
        // left as it is: nothing rebuilt.
        propagation.apply(&ctx, &mut outbound);
        assert_eq!(outbound.len(), 2);
        let tier = regex.decide(&tiers[i % tiers.len()]);
        canary += usize::from(tier.version() == "canary");
        // What a server adapter does with a copy: its context, a pointer copy.
        let copied = mirrored.decide(&requests[3]).mirror();
        canary += usize::from(copied.is_some_and(|m| m.version() == "canary"));
        // A new client is placed by a key drawn for it; a returning one by its cookie.
        let new = visitors.decide(&requests[3]);
        let back = visitors.decide(&returning);
        std::hint::black_box((new.version(), back.version()));
        let client = clients.decide(&proxied[i % proxied.len()]);
        std::hint::black_box(client.version());
    }
    COUNTING.set(false);

    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "decide or the outbound label allocated"
    );
    assert!(
        canary >= 7_500,
        "testers and premium-active alone are half, copies another half: {canary}"
    );
}
