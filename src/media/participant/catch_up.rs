//! Keeps each voice close to real time when it has come to sit ahead of it.
//!
//! `audiorate` makes a voice's timeline contiguous: it stamps each buffer
//! where the previous one ended, and only acts on the incoming timestamps
//! when they stray by more than its tolerance (40 ms). A burst of packets
//! (a sender's backlog released when its connection comes up, a network
//! stall) arrives stamped close together; `audiorate` lays them end to
//! end, and from then on the voice's samples carry timestamps up to 40 ms
//! later than they arrived, for the rest of the lesson. The full mix cannot
//! go out before its own time, so each such sample waits in the mixer for
//! its stamp: measured, every voice sat 20–37 ms ahead, and that was part
//! of what everyone heard added.
//!
//! A probe after `audiorate` measures how far ahead of the clock each
//! buffer sits. When every buffer of a whole second sat more than
//! [`MAX_AHEAD`] ahead, the excess (less [`KEEP_AHEAD`]) is cut from the
//! start of the next buffer going into `audiorate`, which closes the gap
//! in its count: one cut per burst, none for mere jitter (a single
//! buffer on time in the second keeps the voice as it is). Downstream, the
//! timeline stays contiguous, so the full mix and a mix-minus still place
//! every sample alike.
//!
//! The other way round, a voice can come to sit *behind* the clock: its
//! samples reach the mixers after the time they are stamped for, and every
//! mix waits for them, so everyone hears the room that much later.
//! Browsers' voices do, 13–40 ms (the Opus decoder, with in-band FEC on,
//! hands each packet on only when the next one arrives; then the arrival
//! jitter). When every buffer of a whole second sat more than [`MAX_BEHIND`]
//! behind, the voice's timeline is moved later by the least of those lags
//! (plus [`KEEP_AHEAD`]), with an offset on `audiorate`'s source pad: that
//! voice alone carries its delay, and the mixes no longer wait for it. The
//! offset is taken back as far as the voice later sits ahead again, and
//! never passes [`MAX_OFFSET`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

// The voice's format before `audiorate` (`mix_audio_caps`).
use crate::media::formats::{MIX_BYTES_PER_SAMPLE as BYTES_PER_SAMPLE, MIX_RATE as RATE};

/// A voice sitting further ahead than this for a whole window is cut back.
pub(crate) const MAX_AHEAD: Duration = Duration::from_millis(4);
/// How far ahead a voice is left after a cut: its samples reach the mixer
/// just before it needs them.
pub(crate) const KEEP_AHEAD: Duration = Duration::from_millis(2);
/// A voice sitting further behind than this for a whole window is moved
/// later.
pub(crate) const MAX_BEHIND: Duration = Duration::from_millis(4);
/// The most a voice's timeline is moved later: a voice later than that is
/// late for the mixers whatever is done (they drop what misses their
/// deadline), and moving it further would only delay it more.
pub(crate) const MAX_OFFSET: Duration = Duration::from_millis(150);
/// Buffers per window: one second of 20 ms Opus frames.
const WINDOW: usize = 50;
/// What the two probes share: the window's least lead, the samples still
/// to cut, and the running time of the buffer going in.
#[derive(Debug, Default)]
struct Lead {
    seen: usize,
    least_ns: Option<i64>,
    /// The window's greatest lead as measured (negative: every buffer
    /// behind), and its least, for moving the timeline.
    most_ahead_ns: Option<i64>,
    least_ahead_ns: Option<i64>,
    to_cut: u64,
    going_in: Option<u64>,
    /// How much later the voice's timeline is moved now.
    offset_ns: i64,
    /// A new offset to put on the pad.
    new_offset: Option<i64>,
}

impl Lead {
    /// Notes how far ahead of the clock a buffer left (`ahead_ns`; negative
    /// when behind), of which `added_ns` by `audiorate`'s own timeline. At
    /// the end of a window whose every buffer led by more than
    /// [`MAX_AHEAD`], schedules a cut of the lead `audiorate` added: a lead
    /// its input already had would come straight back.
    fn note(&mut self, ahead_ns: i64, added_ns: i64) {
        let lead = ahead_ns.min(added_ns);
        let least = self.least_ns.map_or(lead, |l| l.min(lead));
        let most_ahead = self.most_ahead_ns.map_or(ahead_ns, |m| m.max(ahead_ns));
        let least_ahead = self.least_ahead_ns.map_or(ahead_ns, |m| m.min(ahead_ns));
        self.seen += 1;
        if self.seen < WINDOW {
            self.least_ns = Some(least);
            self.most_ahead_ns = Some(most_ahead);
            self.least_ahead_ns = Some(least_ahead);
            return;
        }
        self.seen = 0;
        self.least_ns = None;
        self.most_ahead_ns = None;
        self.least_ahead_ns = None;
        let keep = KEEP_AHEAD.as_nanos() as i64;
        if most_ahead < -(MAX_BEHIND.as_nanos() as i64) {
            // Behind all second: move the timeline later.
            let offset = (self.offset_ns - most_ahead + keep).min(MAX_OFFSET.as_nanos() as i64);
            if offset != self.offset_ns {
                self.offset_ns = offset;
                self.new_offset = Some(offset);
            }
        } else if least_ahead > MAX_AHEAD.as_nanos() as i64 && self.offset_ns > 0 {
            // Ahead all second with the timeline moved: move it back first.
            let back = (least_ahead - keep).min(self.offset_ns);
            self.offset_ns -= back;
            self.new_offset = Some(self.offset_ns);
        } else if least > MAX_AHEAD.as_nanos() as i64 {
            let excess = least as u64 - keep as u64;
            self.to_cut = excess * RATE / 1_000_000_000;
        }
    }

    /// Samples to cut from the start of a buffer of `samples`.
    fn cut(&mut self, samples: u64) -> u64 {
        let cut = self.to_cut.min(samples);
        self.to_cut -= cut;
        cut
    }
}

/// Watches the lead of what leaves `rate` (an `audiorate` fed F32 mono at
/// 48 kHz) and cuts a lasting excess from what goes in. `room` and
/// `participant` name the voice in the log.
pub(crate) fn catch_up(rate: &gst::Element, room: &str, participant: &str) -> Option<()> {
    let (room, participant) = (room.to_string(), participant.to_string());
    let lead = Arc::new(Mutex::new(Lead::default()));
    let out = rate.static_pad("src")?;
    let within = rate.static_pad("sink")?;
    {
        let lead = lead.clone();
        let (room_out, participant_out) = (room.clone(), participant.clone());
        out.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
                return gst::PadProbeReturn::Ok;
            };
            if let Some((running, now)) = crate::media::probes::against_clock(pad, pts) {
                let running = running.nseconds() as i64;
                let moved = {
                    let Ok(mut l) = lead.lock() else {
                        return gst::PadProbeReturn::Ok;
                    };
                    if let Some(went_in) = l.going_in {
                        // Downstream, the pad's offset is part of the running time.
                        let ahead = running + l.offset_ns - now.nseconds() as i64;
                        l.note(ahead, running - went_in as i64);
                    }
                    l.new_offset.take()
                };
                if let Some(offset) = moved {
                    tracing::debug!(
                        room = %room_out,
                        participant = %participant_out,
                        offset_ms = offset / 1_000_000,
                        "the voice sat behind real time; its timeline moved"
                    );
                    // Applied to the segment sent before the next buffer.
                    pad.set_offset(offset);
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    within.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let samples = (buffer.size() / BYTES_PER_SAMPLE) as u64;
        if samples == 0 {
            return gst::PadProbeReturn::Ok;
        }
        let Ok(mut l) = lead.lock() else {
            return gst::PadProbeReturn::Ok;
        };
        let cut = l.cut(samples);
        if cut == samples {
            drop(l);
            // Taken and freed here, reported handled (see `swallow`).
            drop(info.data.take());
            return gst::PadProbeReturn::Handled;
        }
        if cut > 0 {
            if !crate::media::formats::cut_samples(buffer.make_mut(), cut) {
                return gst::PadProbeReturn::Ok;
            }
            tracing::debug!(
                %room,
                %participant,
                samples = cut,
                "the voice sat ahead of real time; cut back"
            );
        }
        l.going_in = buffer
            .pts()
            .and_then(|p| crate::media::probes::running_time(pad, p))
            .map(gst::ClockTime::nseconds);
        gst::PadProbeReturn::Ok
    });
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn window(lead: &mut Lead, ahead_ms: impl Fn(usize) -> i64) {
        for i in 0..WINDOW {
            lead.note(ahead_ms(i) * MS, ahead_ms(i) * MS);
        }
    }

    #[test]
    fn a_voice_ahead_for_a_whole_second_is_cut_back_to_the_margin() {
        let mut lead = Lead::default();
        window(&mut lead, |i| 30 + (i % 3) as i64);
        // 30 ms ahead at least, 2 ms kept: 28 ms of 48 kHz samples.
        assert_eq!(lead.to_cut, 28 * 48);
        assert_eq!(lead.cut(1920), 28 * 48);
        assert_eq!(lead.cut(960), 0);
    }

    #[test]
    fn a_long_cut_spans_buffers() {
        let mut lead = Lead::default();
        window(&mut lead, |_| 40);
        assert_eq!(lead.cut(960), 960);
        assert_eq!(lead.cut(960), 38 * 48 - 960);
    }

    #[test]
    fn jitter_and_lateness_are_left_alone() {
        let mut lead = Lead::default();
        // Mostly far ahead, but one buffer in the second came just in time.
        window(&mut lead, |i| if i == 17 { 1 } else { 35 });
        assert_eq!(lead.to_cut, 0);
        window(&mut lead, |_| -10);
        assert_eq!(lead.to_cut, 0);
        window(&mut lead, |_| 4);
        assert_eq!(lead.to_cut, 0);
    }

    #[test]
    fn a_lead_the_input_already_had_is_not_cut() {
        let mut lead = Lead::default();
        for _ in 0..WINDOW {
            lead.note(35 * MS, 0);
        }
        assert_eq!(lead.to_cut, 0);
    }

    /// A live voice through `audiorate` for 2.5 s: its first buffer stamped
    /// `first_late` late (a burst after it then lies on `audiorate`'s
    /// timeline that much ahead), or every buffer `all_ahead` ahead. Returns
    /// how far ahead of the clock the last buffer left, and the samples
    /// `audiorate` had to insert.
    fn run_voice(first_late: Duration, all_ahead: Duration, caught_up: bool) -> (i64, u64) {
        run_voice_behind(first_late, all_ahead, Duration::ZERO, caught_up)
    }

    /// As [`run_voice`], with every buffer handed on `all_behind` after its
    /// time: a voice that reaches the mixers late.
    fn run_voice_behind(
        first_late: Duration,
        all_ahead: Duration,
        all_behind: Duration,
        caught_up: bool,
    ) -> (i64, u64) {
        gst::init().unwrap();
        // A queue that holds `all_behind` of the voice hands every buffer
        // on that late, from the first one on, as the Opus decoder does.
        let hold = all_behind.as_nanos() as u64;
        let pipeline = gst::parse::launch(&format!(
            "audiotestsrc is-live=true samplesperbuffer=960 wave=sine \
             ! capsfilter name=caps caps=audio/x-raw,format=F32LE,rate=48000,channels=1,layout=interleaved \
             ! queue min-threshold-time={hold} max-size-time=0 max-size-buffers=0 max-size-bytes=0 \
             ! audiorate skip-to-first=true name=rate ! fakesink sync=false name=sink"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let by_name = |n: &str| pipeline.by_name(n).unwrap();
        let caps_src = by_name("caps").static_pad("src").unwrap();
        crate::media::probes::run_ahead(&caps_src, all_ahead);
        let first = std::sync::atomic::AtomicBool::new(true);
        caps_src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                let b = info.buffer_mut().unwrap().make_mut();
                b.set_pts(
                    b.pts().unwrap() + gst::ClockTime::from_nseconds(first_late.as_nanos() as u64),
                );
            }
            gst::PadProbeReturn::Ok
        });
        let rate = by_name("rate");
        if caught_up {
            catch_up(&rate, "room", "voice").unwrap();
        }
        let last = Arc::new(Mutex::new(None));
        {
            let last = last.clone();
            let sink = by_name("sink").static_pad("sink").unwrap();
            sink.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                let pts = info.buffer().and_then(|b| b.pts()).unwrap();
                if let Some((running, now)) = crate::media::probes::against_clock(pad, pts) {
                    *last.lock().unwrap() = Some(running.nseconds() as i64 - now.nseconds() as i64);
                }
                gst::PadProbeReturn::Ok
            });
        }
        pipeline.set_state(gst::State::Playing).unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        pipeline.set_state(gst::State::Null).unwrap();
        let lead = last.lock().unwrap().expect("buffers flowed");
        (lead, rate.property::<u64>("add"))
    }

    #[test]
    fn a_voice_laid_ahead_by_a_burst_is_brought_back_near_the_clock() {
        let late = Duration::from_millis(30);
        let (left, _) = run_voice(late, Duration::ZERO, false);
        let (caught, inserted) = run_voice(late, Duration::ZERO, true);
        // Left alone the voice sits about 30 ms ahead; brought back, near
        // the clock (2 ms aimed for; on a machine busy with a build beside
        // the test it measured 5 ms, so the bound is not the aim).
        assert!(
            left >= 25 * MS && caught <= 10 * MS,
            "lead without the catch-up {:.1} ms, with it {:.1} ms",
            left as f64 / MS as f64,
            caught as f64 / MS as f64
        );
        assert_eq!(inserted, 0, "the cut is not undone with silence");
    }

    #[test]
    fn a_voice_behind_for_a_whole_second_is_moved_later_and_back() {
        let mut lead = Lead::default();
        window(&mut lead, |i| -25 - (i % 3) as i64);
        // 25 ms behind at best, 2 ms ahead kept: moved 27 ms later.
        assert_eq!(lead.new_offset.take(), Some(27 * MS));
        assert_eq!(lead.to_cut, 0, "nothing is cut from a late voice");
        // On time now: left as it is.
        window(&mut lead, |i| 2 + (i % 3) as i64);
        assert_eq!(lead.new_offset, None);
        // One buffer in the second on time: jitter, left alone.
        window(&mut lead, |i| if i == 9 { 0 } else { -12 });
        assert_eq!(lead.new_offset, None);
        // Ahead all second: the move is taken back before anything is cut.
        window(&mut lead, |_| 40);
        assert_eq!(lead.new_offset.take(), Some(0));
        assert_eq!(lead.to_cut, 0);
        // Never more than MAX_OFFSET.
        window(&mut lead, |_| -400);
        assert_eq!(lead.new_offset, Some(MAX_OFFSET.as_nanos() as i64));
    }

    #[test]
    fn a_live_voice_behind_the_clock_is_brought_onto_it() {
        let behind = Duration::from_millis(25);
        let (left, _) = run_voice_behind(Duration::ZERO, Duration::ZERO, behind, false);
        let (moved, inserted) = run_voice_behind(Duration::ZERO, Duration::ZERO, behind, true);
        assert!(
            left <= -20 * MS && (-5 * MS..=10 * MS).contains(&moved),
            "lead without the catch-up {:.1} ms, with it {:.1} ms",
            left as f64 / MS as f64,
            moved as f64 / MS as f64
        );
        assert_eq!(inserted, 0, "no silence inserted");
    }

    #[test]
    fn a_voice_stamped_ahead_at_its_source_is_left_alone() {
        let (lead, inserted) = run_voice(Duration::ZERO, Duration::from_millis(50), true);
        assert!(lead > 20 * MS, "{:.1} ms", lead as f64 / MS as f64);
        assert_eq!(inserted, 0);
    }

    #[test]
    fn each_window_is_judged_afresh() {
        let mut lead = Lead::default();
        // Half a window on time, then far ahead: not a whole second ahead yet.
        for _ in 0..WINDOW / 2 {
            lead.note(0, 0);
        }
        for _ in 0..WINDOW / 2 {
            lead.note(30 * MS, 30 * MS);
        }
        assert_eq!(lead.to_cut, 0);
        window(&mut lead, |_| 30);
        assert_eq!(lead.to_cut, 28 * 48);
    }
}
