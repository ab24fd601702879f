//! A process meters at most `MAX_METERED_VERSIONS` (`Gray`, version) pairs; later versions
//! are decided as usual, just not counted. (Its own test binary: slots are process-wide.)

mod common;

use common::{gray, req};
use gray_core::{MAX_METERED_VERSIONS, MAX_VERSIONS};

#[test]
fn versions_past_the_cap_are_served_but_not_counted() {
    let versions: Vec<String> = (0..MAX_VERSIONS).map(|i| format!("v{i}")).collect();
    let rules = format!("versions: [{}]\n", versions.join(", "));
    let full = MAX_METERED_VERSIONS / MAX_VERSIONS;
    let grays: Vec<_> = (0..full).map(|_| gray(&rules)).collect();
    for g in &grays {
        assert_eq!(g.metrics().versions().len(), MAX_VERSIONS);
        assert!(g.decide(&req("/", &[])).measure().is_some());
    }
    let late = gray("versions: [late]\n");
    let d = late.decide(&req("/", &[]));
    assert_eq!(d.version(), "late");
    assert!(d.measure().is_none());
    assert!(late.metrics().versions().is_empty());
    // The first ones still count.
    grays[0]
        .decide(&req("/", &[]))
        .measure()
        .unwrap()
        .finish(200);
    assert_eq!(grays[0].metrics().version("v0").map(|v| v.total()), Some(1));
}
