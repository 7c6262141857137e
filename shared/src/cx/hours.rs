//! Business hours: an IANA timezone, weekly slots and holiday dates, and the two questions the
//! inbox asks of them: is the business open at an instant, and when does it open next (which
//! names the closed period an off-hours reply belongs to).
//!
//! A slot is local wall-clock time on an ISO weekday (Monday = 1). An `end` at or before `start`
//! runs past midnight into the next day. A holiday is closed all day, whatever its slots say,
//! including the tail of an overnight slot that began the day before. Local times that do not
//! exist (the hour skipped when clocks go forward) open at the first instant after the gap;
//! times that occur twice (clocks go back) open at the first occurrence.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// One weekly opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    /// ISO weekday, Monday = 1 .. Sunday = 7.
    pub day_of_week: u8,
    #[serde(with = "hhmm")]
    pub start: NaiveTime,
    #[serde(with = "hhmm")]
    pub end: NaiveTime,
}

impl Slot {
    fn overnight(&self) -> bool {
        self.end <= self.start
    }

    /// Minutes since Monday 00:00 at which it opens, and how long it lasts.
    fn week_span(&self) -> (i64, i64) {
        let start = i64::from(self.day_of_week - 1) * 1440 + minutes(self.start);
        let mut length = minutes(self.end) - minutes(self.start);
        if length <= 0 {
            length += 1440;
        }
        (start, length)
    }
}

fn minutes(t: NaiveTime) -> i64 {
    i64::from(t.hour_minute().0) * 60 + i64::from(t.hour_minute().1)
}

trait HourMinute {
    fn hour_minute(&self) -> (u32, u32);
}

impl HourMinute for NaiveTime {
    fn hour_minute(&self) -> (u32, u32) {
        use chrono::Timelike;
        (self.hour(), self.minute())
    }
}

/// `"HH:MM"` (24-hour).
pub mod hhmm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn parse(s: &str) -> Option<NaiveTime> {
        let (h, m) = s.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
    }

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let raw = String::deserialize(d)?;
        parse(&raw)
            .ok_or_else(|| serde::de::Error::custom("must be a time as HH:MM (00:00 to 23:59)"))
    }
}

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    pub timezone: Tz,
    pub slots: Vec<Slot>,
    pub holidays: Vec<NaiveDate>,
}

/// Why a schedule is refused, with the index of the slot concerned where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleProblem {
    UnknownTimezone,
    DayOutOfRange(usize),
    EmptySlot(usize),
    Overlap(usize, usize),
}

/// Parses an IANA timezone name (`Europe/Madrid`).
pub fn parse_timezone(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// Every problem of `slots`: days outside 1..=7, a start equal to its end, overlaps (overnight
/// slots included, Sunday wrapping to Monday).
pub fn check_slots(slots: &[Slot]) -> Vec<ScheduleProblem> {
    const WEEK: i64 = 7 * 1440;
    let mut problems = Vec::new();
    for (i, s) in slots.iter().enumerate() {
        if !(1..=7).contains(&s.day_of_week) {
            problems.push(ScheduleProblem::DayOutOfRange(i));
        } else if s.start == s.end {
            problems.push(ScheduleProblem::EmptySlot(i));
        }
    }
    // Overlaps among the slots that are valid on their own.
    let valid: Vec<usize> = (0..slots.len())
        .filter(|i| {
            !problems.iter().any(|p| {
                matches!(p, ScheduleProblem::DayOutOfRange(j) | ScheduleProblem::EmptySlot(j) if j == i)
            })
        })
        .collect();
    for (n, &i) in valid.iter().enumerate() {
        for &j in &valid[n + 1..] {
            let (a, la) = slots[i].week_span();
            let (b, lb) = slots[j].week_span();
            // Two spans on a circle of one week overlap when either starts inside the other.
            let inside = |x: i64, start: i64, len: i64| (x - start).rem_euclid(WEEK) < len;
            if inside(b, a, la) || inside(a, b, lb) {
                problems.push(ScheduleProblem::Overlap(i, j));
            }
        }
    }
    problems
}

impl BusinessHours {
    fn holiday(&self, date: NaiveDate) -> bool {
        self.holidays.contains(&date)
    }

    /// Whether the business is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.timezone).naive_local();
        let (date, time) = (local.date(), local.time());
        if self.holiday(date) {
            return false;
        }
        let today = date.weekday().number_from_monday() as u8;
        let yesterday = date
            .pred_opt()
            .map(|d| d.weekday().number_from_monday() as u8);
        self.slots.iter().any(|s| {
            if s.overnight() {
                (s.day_of_week == today && time >= s.start)
                    || (Some(s.day_of_week) == yesterday
                        && time < s.end
                        && !date.pred_opt().is_some_and(|d| self.holiday(d)))
            } else {
                s.day_of_week == today && time >= s.start && time < s.end
            }
        })
    }

    /// The first instant after `at` at which a slot opens (within a year), or `None` when no
    /// slot ever opens.
    pub fn next_opening(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = at.with_timezone(&self.timezone).date_naive();
        (0..=370)
            .filter_map(|offset| start.checked_add_signed(Duration::days(offset)))
            .filter(|date| !self.holiday(*date))
            .flat_map(|date| {
                let day = date.weekday().number_from_monday() as u8;
                self.slots
                    .iter()
                    .filter(move |s| s.day_of_week == day)
                    .filter_map(move |s| self.instant(date, s.start))
            })
            .filter(|opening| *opening > at)
            .min()
    }

    /// The UTC instant of a local wall-clock time (see the module documentation for gaps).
    fn instant(&self, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
        let naive = date.and_time(time);
        match self.timezone.from_local_datetime(&naive) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            LocalResult::None => (1..=180).find_map(|m| {
                self.timezone
                    .from_local_datetime(&(naive + Duration::minutes(m)))
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(day: u8, start: &str, end: &str) -> Slot {
        Slot {
            day_of_week: day,
            start: hhmm::parse(start).unwrap(),
            end: hhmm::parse(end).unwrap(),
        }
    }

    fn madrid(slots: Vec<Slot>, holidays: &[&str]) -> BusinessHours {
        BusinessHours {
            timezone: parse_timezone("Europe/Madrid").unwrap(),
            slots,
            holidays: holidays.iter().map(|d| d.parse().unwrap()).collect(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn weekday_slots_in_the_local_timezone() {
        // Friday 2026-12-04; Madrid is UTC+1 in winter.
        let h = madrid(vec![slot(5, "09:00", "18:00")], &[]);
        assert!(!h.is_open(utc("2026-12-04T07:59:00Z")));
        assert!(h.is_open(utc("2026-12-04T08:00:00Z")));
        assert!(h.is_open(utc("2026-12-04T16:59:00Z")));
        assert!(!h.is_open(utc("2026-12-04T17:00:00Z")));
        // Next opening after Friday evening: next Friday 09:00 local.
        assert_eq!(
            h.next_opening(utc("2026-12-04T18:00:00Z")),
            Some(utc("2026-12-11T08:00:00Z"))
        );
    }

    #[test]
    fn a_slot_past_midnight_runs_into_the_next_day() {
        // Friday 22:00 to Saturday 02:00.
        let h = madrid(vec![slot(5, "22:00", "02:00")], &[]);
        assert!(h.is_open(utc("2026-12-04T21:30:00Z"))); // Fri 22:30
        assert!(h.is_open(utc("2026-12-05T00:30:00Z"))); // Sat 01:30
        assert!(!h.is_open(utc("2026-12-05T01:00:00Z"))); // Sat 02:00
        assert!(!h.is_open(utc("2026-12-04T20:00:00Z"))); // Fri 21:00
    }

    #[test]
    fn a_holiday_is_closed_all_day() {
        let h = madrid(
            vec![slot(5, "09:00", "18:00"), slot(4, "22:00", "02:00")],
            &["2026-12-04"],
        );
        assert!(!h.is_open(utc("2026-12-04T10:00:00Z")));
        // The tail of Thursday's overnight slot falls on the holiday: closed too.
        assert!(!h.is_open(utc("2026-12-04T00:30:00Z")));
        assert_eq!(
            h.next_opening(utc("2026-12-04T10:00:00Z")),
            Some(utc("2026-12-10T21:00:00Z"))
        );
    }

    #[test]
    fn clocks_changing_keep_local_hours() {
        // Sunday 2026-03-29, Madrid goes from UTC+1 to UTC+2 at 02:00 local.
        let h = madrid(
            vec![slot(7, "09:00", "12:00"), slot(7, "02:30", "03:30")],
            &[],
        );
        assert!(h.is_open(utc("2026-03-29T07:00:00Z"))); // 09:00 CEST
        assert!(!h.is_open(utc("2026-03-29T06:59:00Z")));
        // 02:30 does not exist that night: the slot opens when the clock reaches 03:00.
        assert_eq!(
            h.next_opening(utc("2026-03-28T12:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        // Sunday 2026-10-25 back to UTC+1: 09:00 is 08:00Z.
        assert!(h.is_open(utc("2026-10-25T08:00:00Z")));
        assert!(!h.is_open(utc("2026-10-25T07:59:00Z")));
    }

    #[test]
    fn slots_are_checked() {
        assert!(check_slots(&[slot(1, "09:00", "18:00"), slot(2, "09:00", "18:00")]).is_empty());
        assert_eq!(
            check_slots(&[slot(1, "09:00", "12:00"), slot(1, "11:00", "13:00")]),
            vec![ScheduleProblem::Overlap(0, 1)]
        );
        // Sunday night into Monday morning overlaps Monday 01:00.
        assert_eq!(
            check_slots(&[slot(7, "22:00", "02:00"), slot(1, "01:00", "03:00")]),
            vec![ScheduleProblem::Overlap(0, 1)]
        );
        assert_eq!(
            check_slots(&[slot(8, "09:00", "10:00"), slot(1, "09:00", "09:00")]),
            vec![
                ScheduleProblem::DayOutOfRange(0),
                ScheduleProblem::EmptySlot(1)
            ]
        );
        assert!(parse_timezone("Mars/Olympus").is_none());
        assert!(hhmm::parse("24:00").is_none() && hhmm::parse("9:00").is_none());
    }
}
