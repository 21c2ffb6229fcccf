//! Fuzz target `envelope`: feeds arbitrary bytes to every decoder of the
//! structured protocol (`Request`, `Reply`, `Status`, `Heartbeat`, `MeasureConfig`, `Metrics`),
//! `Request::salvage`, the filter parser and the Nagios output parsers, and checks the invariants the
//! agent and server rely on: no panic; whatever decodes re-encodes to bytes
//! that decode to the same value with the same signing bytes, and passes
//! `validate`; a parsed filter prints as text that parses back to an equal
//! filter; a filter error points inside the text and displays on 3 lines;
//! a decode error displays as one line.

#![no_main]

use bot_proto::{
    DecodeError, Heartbeat, MeasureConfig, Metrics, Reply, Request, Status, filter, topics,
};
use libfuzzer_sys::fuzz_target;

fn check_error(e: &DecodeError) {
    let line = e.to_string();
    assert!(!line.contains('\n'), "{line:?}");
    // Quoted values are cut to 60 characters as shown, filter bits to 40.
    assert!(line.chars().count() <= 400, "{line:?}");
}

fn check_filter(text: &str) {
    match filter::parse(text) {
        Ok(f) => {
            let shown = f.to_string();
            let again = filter::parse(&shown).expect("canonical text parses");
            assert_eq!(again, f, "{text:?} printed as {shown:?}");
            assert_eq!(again.to_string(), shown);
        }
        Err(e) => {
            assert!(e.position <= text.chars().count());
            assert_eq!(e.to_string().lines().count(), 3);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match Request::decode(data) {
        Ok(r) => {
            assert_eq!(r.validate(), Ok(()));
            let again = Request::decode(&r.encode()).expect("re-encoded request decodes");
            assert_eq!(again.signing_bytes(), r.signing_bytes());
            assert_eq!(again, r);
            assert!(r.parsed_filter().is_ok());
            let _ = r.check_clock(1_700_000_000_000);
            let _ = r.is_expired(u64::MAX);
        }
        Err(e) => check_error(&e),
    }
    match Reply::decode(data) {
        Ok(r) => {
            let again = Reply::decode(&r.encode()).expect("re-encoded reply decodes");
            assert_eq!(again.signing_bytes(), r.signing_bytes());
            assert_eq!(again, r);
        }
        Err(e) => check_error(&e),
    }
    match Status::decode(data) {
        Ok(s) => {
            assert_eq!(Status::decode(&s.encode()).as_ref(), Ok(&s));
            // A status is a filter target.
            let _ = filter::Filter::all().matches(&s);
        }
        Err(e) => check_error(&e),
    }
    match Heartbeat::decode(data) {
        Ok(h) => assert_eq!(Heartbeat::decode(&h.encode()).as_ref(), Ok(&h)),
        Err(e) => check_error(&e),
    }
    match MeasureConfig::decode(data) {
        Ok(c) => {
            assert_eq!(MeasureConfig::decode(&c.encode()).as_ref(), Ok(&c));
            assert_eq!(c.measure().validate(), Ok(()));
        }
        Err(e) => check_error(&e),
    }
    match Metrics::decode(data) {
        Ok(d) => {
            // What was kept re-encodes to a batch that decodes whole, and
            // a batch with nothing left out is signed as it re-encodes.
            assert_eq!(d.metrics.validate(), Ok(()));
            let again = Metrics::decode(&d.metrics.encode()).expect("re-encoded batch decodes");
            assert_eq!(again.rejected, 0);
            assert_eq!(again.metrics, d.metrics);
            assert_eq!(again.signing_bytes, d.metrics.signing_bytes());
            if d.rejected == 0 {
                assert_eq!(d.signing_bytes, d.metrics.signing_bytes());
            }
            if let Some(why) = &d.first_rejection {
                assert!(!why.contains('\n') && why.chars().count() <= 400, "{why:?}");
            }
        }
        Err(e) => check_error(&e),
    }
    if let Some((id, reply_to)) = Request::salvage(data) {
        assert!(!id.is_empty() && id.len() <= 64);
        assert_eq!(topics::valid_reply_topic(&reply_to), Ok(()));
    }
    check_filter(&String::from_utf8_lossy(data));
    // A check plugin's output: any text is taken, and what it yields is valid.
    let text = String::from_utf8_lossy(data);
    let out = bot_proto::nagios::split_output(&text);
    let (perf, _) = bot_proto::nagios::parse_perfdata(&out.perfdata);
    assert!(perf.len() <= bot_proto::nagios::MAX_PERF);
    for s in bot_proto::nagios::perf_samples("fuzz", &perf) {
        assert_eq!(s.validate(), Ok(()), "{s:?}");
    }
});
