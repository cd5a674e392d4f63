//! A native checker for systemd `OnCalendar=` expressions (FORMAT.md 5).
//!
//! pyapp-build runs where systemd may be absent, yet a bad schedule must be refused before a
//! bundle ships; this follows systemd's own parser (systemd.time(7)) and says which part is wrong.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A schedule that systemd would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{expression:?} is not a valid calendar expression: {reason}")]
pub struct CalendarError {
    pub expression: String,
    pub reason: String,
}

/// A checked `OnCalendar=` expression, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Schedule(String);

impl Schedule {
    pub fn new(expression: impl Into<String>) -> Result<Schedule, CalendarError> {
        let expression = expression.into();
        check_calendar(&expression)?;
        Ok(Schedule(expression))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Schedule {
    type Error = CalendarError;
    fn try_from(expression: String) -> Result<Schedule, CalendarError> {
        Schedule::new(expression)
    }
}

impl From<Schedule> for String {
    fn from(schedule: Schedule) -> String {
        schedule.0
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Check `expression` the way `systemd-analyze calendar` would.
pub fn check_calendar(expression: &str) -> Result<(), CalendarError> {
    parse_expression(expression).map_err(|reason| CalendarError {
        expression: expression.to_owned(),
        reason,
    })
}

const SHORTHANDS: [&str; 10] = [
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "yearly",
    "annually",
    "quarterly",
    "semiannually",
    "semi-annually",
];

/// Full and short weekday names, Monday first, as systemd matches them.
const WEEKDAYS: [(&str, &str); 7] = [
    ("Monday", "Mon"),
    ("Tuesday", "Tue"),
    ("Wednesday", "Wed"),
    ("Thursday", "Thu"),
    ("Friday", "Fri"),
    ("Saturday", "Sat"),
    ("Sunday", "Sun"),
];

const MICROS_PER_SECOND: u64 = 1_000_000;

/// `[WEEKDAYS] [DATE] [TIME] [TIMEZONE]` or a shorthand; `Err` says what is wrong.
fn parse_expression(expression: &str) -> Result<(), String> {
    if expression.is_empty() {
        return Err("it is empty".to_owned());
    }
    if expression.trim() != expression {
        return Err("it starts or ends with whitespace".to_owned());
    }
    let body = strip_time_zone(expression)?;
    if SHORTHANDS
        .iter()
        .any(|shorthand| shorthand.eq_ignore_ascii_case(body))
    {
        return Ok(());
    }
    let rest = parse_weekdays(body)?;
    let rest = parse_date(rest)?;
    parse_time(rest)
}

/// Where systemd looks time zones up (`verify_timezone()` in its time-util.c).
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The magic number every compiled time zone file starts with (tzfile(5)).
const TZIF_MAGIC: &[u8; 4] = b"TZif";

/// Drop a trailing ` UTC` or ` ZONE` (a tz database name); refuse an unknown zone.
fn strip_time_zone(expression: &str) -> Result<&str, String> {
    let Some((head, last)) = expression.rsplit_once(' ') else {
        return Ok(expression);
    };
    if last.eq_ignore_ascii_case("UTC") {
        return Ok(head);
    }
    if !last.chars().any(|c| c.is_ascii_alphabetic()) {
        return Ok(expression);
    }
    check_time_zone(last, Path::new(ZONEINFO))?;
    Ok(head)
}

/// The checks of systemd's `verify_timezone()`: a normalised name (letters, digits, `-_+`,
/// parts separated by single `/`s, none leading or trailing) naming a regular file under
/// `zoneinfo` (links followed) that starts with the TZif magic. Without a `zoneinfo`
/// directory only the name is checked.
fn check_time_zone(zone: &str, zoneinfo: &Path) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '-');
    if !zone.chars().all(allowed) || zone.split('/').any(str::is_empty) {
        return Err(format!(
            "{zone:?} is not a time zone name (letters, digits, \"-_+\", parts separated by \
             single \"/\", such as Europe/Berlin)"
        ));
    }
    if !zoneinfo.is_dir() {
        return Ok(());
    }
    let path = zoneinfo.join(zone);
    let unknown = || {
        format!(
            "{zone:?} is not a known time zone (write UTC or a tz database name such as Europe/Berlin)"
        )
    };
    let mut file = match File::open(&path) {
        Ok(file) if file.metadata().is_ok_and(|meta| meta.is_file()) => file,
        _ => return Err(unknown()),
    };
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == TZIF_MAGIC => Ok(()),
        _ => Err(format!(
            "{zone:?} is not a time zone: {} is not a TZif file",
            path.display()
        )),
    }
}

/// `Mon`, `Mon,Wed`, `Mon..Fri`, `Mon-Fri`, `Sat,Sun`… followed by a space or the end.
/// Returns what follows, spaces skipped; no weekday at all is fine.
fn parse_weekdays(text: &str) -> Result<&str, String> {
    let mut rest = text;
    let mut range_start: Option<usize> = None;
    let mut first = true;
    loop {
        let Some((day, length)) = match_weekday(rest) else {
            if first {
                return Ok(rest);
            }
            return Err(format!("{:?} is not a weekday", first_word(rest)));
        };
        let after = &rest[length..];
        if !matches!(after.chars().next(), None | Some('-' | '.' | ',' | ' ')) {
            return Err(format!(
                "{:?} is not a weekday (write Mon..Sun or Monday..Sunday)",
                first_word(rest)
            ));
        }
        if let Some(start) = range_start {
            if start > day {
                return Err(format!(
                    "weekday range {}..{} goes backwards",
                    WEEKDAYS[start].1, WEEKDAYS[day].1
                ));
            }
        }
        rest = after;
        if let Some(after_spaces) = rest.strip_prefix(' ') {
            return Ok(after_spaces.trim_start_matches(' '));
        }
        if rest.is_empty() {
            return Ok(rest);
        }
        if let Some(after_dash) = rest.strip_prefix("..").or_else(|| rest.strip_prefix('-')) {
            if range_start.is_some() {
                return Err("a weekday range has two ends (Mon..Fri)".to_owned());
            }
            range_start = Some(day);
            rest = after_dash;
        } else if let Some(after_comma) = rest.strip_prefix(',') {
            range_start = None;
            rest = after_comma;
        } else {
            return Err("write a weekday range as Mon..Fri".to_owned());
        }
        if rest.is_empty() || rest.starts_with(' ') {
            if range_start.is_some() {
                return Err("a weekday range needs an end (Mon..Fri)".to_owned());
            }
            return Ok(rest.trim_start_matches(' '));
        }
        first = false;
    }
}

/// The weekday `text` starts with (0 = Monday) and the length of its name.
fn match_weekday(text: &str) -> Option<(usize, usize)> {
    WEEKDAYS
        .iter()
        .enumerate()
        .find_map(|(day, (full, short))| {
            [full, short].into_iter().find_map(|name| {
                text.get(..name.len())
                    .filter(|prefix| prefix.eq_ignore_ascii_case(name))
                    .map(|_| (day, name.len()))
            })
        })
}

fn first_word(text: &str) -> &str {
    text.split([' ', ',', '.', '-']).next().unwrap_or(text)
}

/// The calendar fields and their ranges.
#[derive(Clone, Copy)]
enum Field {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Year => "year",
            Field::Month => "month",
            Field::Day => "day",
            Field::Hour => "hour",
            Field::Minute => "minute",
            Field::Second => "second",
        }
    }

    /// The smallest and largest value; seconds are in microseconds.
    fn range(self) -> (u64, u64) {
        match self {
            Field::Year => (1970, 2199),
            Field::Month => (1, 12),
            Field::Day => (1, 31),
            Field::Hour => (0, 23),
            Field::Minute => (0, 59),
            Field::Second => (0, 60 * MICROS_PER_SECOND - 1),
        }
    }

    fn show(self, value: u64) -> String {
        match self {
            Field::Second => {
                let fraction = value % MICROS_PER_SECOND;
                if fraction == 0 {
                    (value / MICROS_PER_SECOND).to_string()
                } else {
                    let digits = format!("{fraction:06}");
                    format!(
                        "{}.{}",
                        value / MICROS_PER_SECOND,
                        digits.trim_end_matches('0')
                    )
                }
            }
            _ => value.to_string(),
        }
    }
}

/// One item of a comma list: `5`, `1..5`, `0/15`, `1..5/2`.
struct Component {
    start: u64,
    stop: Option<u64>,
    repeat: Option<u64>,
}

/// `*` (every value) or a comma list of components.
type Chain = Option<Vec<Component>>;

/// `[YEAR-]MONTH-DAY` (or `MONTH~DAY`, `YEAR-MONTH~DAY`), followed by a space or the end.
/// A first part followed by `:` or the end is a time, not a date: nothing is consumed.
fn parse_date(text: &str) -> Result<&str, String> {
    if text.is_empty() {
        return Ok(text);
    }
    let (first, rest) = parse_chain(text, false)?;
    if rest.is_empty() || rest.starts_with(':') {
        return Ok(text);
    }
    let from_end = separator(rest, "date")?;
    let (second, rest) = parse_chain(&rest[1..], false)?;
    if rest.is_empty() || rest.starts_with(' ') {
        check_chain(Field::Month, &first, false)?;
        check_chain(Field::Day, &second, from_end)?;
        return Ok(rest.trim_start_matches(' '));
    }
    if from_end {
        return Err("\"~\" may only separate the month and the day".to_owned());
    }
    let from_end = separator(rest, "date")?;
    let (third, rest) = parse_chain(&rest[1..], false)?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return Err(unexpected(rest, "date"));
    }
    check_chain(Field::Year, &two_digit_years(first), false)?;
    check_chain(Field::Month, &second, false)?;
    check_chain(Field::Day, &third, from_end)?;
    Ok(rest.trim_start_matches(' '))
}

/// Whether the date separator at the start of `text` is `~` (true) or `-` (false).
fn separator(text: &str, part: &str) -> Result<bool, String> {
    match text.chars().next() {
        Some('~') => Ok(true),
        Some('-') => Ok(false),
        _ => Err(unexpected(text, part)),
    }
}

/// Years 0..69 mean 2000..2069 and 70..99 mean 1970..1999, as in systemd.
fn two_digit_years(chain: Chain) -> Chain {
    let widen = |year: u64| match year {
        0..=69 => year + 2000,
        70..=99 => year + 1900,
        _ => year,
    };
    chain.map(|components| {
        components
            .into_iter()
            .map(|component| Component {
                start: widen(component.start),
                stop: component.stop.map(widen),
                repeat: component.repeat,
            })
            .collect()
    })
}

/// `HOUR:MINUTE[:SECOND]`, which must end the expression; no time at all means 00:00:00.
fn parse_time(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    let (hour, rest) = parse_chain(text, false)?;
    let Some(rest) = rest.strip_prefix(':') else {
        return Err(unexpected(rest, "time"));
    };
    let (minute, rest) = parse_chain(rest, false)?;
    check_chain(Field::Hour, &hour, false)?;
    check_chain(Field::Minute, &minute, false)?;
    if rest.is_empty() {
        return Ok(());
    }
    let Some(rest) = rest.strip_prefix(':') else {
        return Err(unexpected(rest, "time"));
    };
    let (second, rest) = parse_chain(rest, true)?;
    if !rest.is_empty() {
        return Err(unexpected(rest, "time"));
    }
    check_chain(Field::Second, &second, false)
}

fn unexpected(rest: &str, part: &str) -> String {
    format!("unexpected {rest:?} in the {part}")
}

/// `*` or `COMPONENT[,COMPONENT…]`; returns what follows.
fn parse_chain(text: &str, fractional: bool) -> Result<(Chain, &str), String> {
    if let Some(rest) = text.strip_prefix('*') {
        return Ok((None, rest));
    }
    let mut components = Vec::new();
    let mut rest = text;
    loop {
        let (component, after) = parse_component(rest, fractional)?;
        components.push(component);
        match after.strip_prefix(',') {
            Some(next) => rest = next,
            None => return Ok((Some(components), after)),
        }
    }
}

/// `N`, `N..M`, `N/STEP` or `N..M/STEP`.
fn parse_component(text: &str, fractional: bool) -> Result<(Component, &str), String> {
    let (start, mut rest) = parse_number(text, fractional)?;
    let mut stop = None;
    if let Some(after) = rest.strip_prefix("..") {
        let (value, after) = parse_number(after, fractional)?;
        stop = Some(value);
        rest = after;
    }
    let mut repeat = None;
    if let Some(after) = rest.strip_prefix('/') {
        let (value, after) = parse_number(after, fractional)?;
        if value == 0 {
            return Err("a repetition step must be more than 0".to_owned());
        }
        repeat = Some(value);
        rest = after;
    }
    if !matches!(
        rest.chars().next(),
        None | Some(' ' | ',' | '-' | '~' | ':')
    ) {
        return Err(format!("unexpected {rest:?} after a number"));
    }
    Ok((
        Component {
            start,
            stop,
            repeat,
        },
        rest,
    ))
}

/// Decimal digits; with `fractional` (seconds), an optional `.DIGITS`, in microseconds
/// rounded like systemd.
fn parse_number(text: &str, fractional: bool) -> Result<(u64, &str), String> {
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return Err(format!("expected a number or * at {text:?}"));
    }
    let too_large = || format!("{:?} is too large", &text[..digits]);
    let whole: u64 = text[..digits].parse().map_err(|_| too_large())?;
    if whole > i32::MAX as u64 {
        return Err(too_large());
    }
    let rest = &text[digits..];
    if !fractional {
        return Ok((whole, rest));
    }
    let mut value = whole * MICROS_PER_SECOND;
    let Some(fraction) = rest
        .strip_prefix('.')
        .filter(|after| after.starts_with(|c: char| c.is_ascii_digit()))
    else {
        return Ok((value, rest));
    };
    let fraction_digits = fraction.len()
        - fraction
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    let mut scale = MICROS_PER_SECOND;
    for (index, digit) in fraction[..fraction_digits].bytes().enumerate() {
        let digit = u64::from(digit - b'0');
        if index < 6 {
            scale /= 10;
            value += digit * scale;
        } else {
            if digit >= 5 {
                value += 1;
            }
            break;
        }
    }
    Ok((value, &fraction[fraction_digits..]))
}

/// Range checks of systemd's `calendar_spec_valid`, after its normalisation: a range's end is
/// pulled back to its last repetition (a range that shrinks to one value is that value), and
/// the list is sorted without duplicates. `from_end` is a day counted back with `~`: at most
/// 28 days back, and systemd allows three days less for each further value of the list.
fn check_chain(field: Field, chain: &Chain, from_end: bool) -> Result<(), String> {
    let Some(components) = chain else {
        return Ok(());
    };
    let step_of_range = match field {
        Field::Second => MICROS_PER_SECOND,
        _ => 1,
    };
    let mut normalized: Vec<(u64, Option<u64>, u64)> = components
        .iter()
        .map(|component| {
            let start = component.start;
            let repeat = component.repeat.unwrap_or(if component.stop.is_some() {
                step_of_range
            } else {
                0
            });
            match component.stop {
                Some(stop) if stop > start && repeat > 0 => {
                    let stop = stop - (stop - start) % repeat;
                    if stop == start {
                        (start, None, 0)
                    } else {
                        (start, Some(stop), repeat)
                    }
                }
                Some(stop) if stop == start => (start, None, 0),
                stop => (start, stop, repeat),
            }
        })
        .collect();
    normalized
        .sort_by_key(|&(start, stop, repeat)| (start, stop.map_or(-1, |s| s as i128), repeat));
    normalized.dedup();

    let name = field.name();
    let (min, max) = field.range();
    let show_limit = |limit: u64| match field {
        Field::Second => (limit / MICROS_PER_SECOND).to_string(),
        _ => limit.to_string(),
    };
    for (index, &(start, stop, repeat)) in normalized.iter().enumerate() {
        let max = if from_end {
            max - 3 * (index as u64 + 1)
        } else {
            max
        };
        let in_range = |value: u64| {
            if (min..=max).contains(&value) {
                return Ok(());
            }
            let counted = match (from_end, index) {
                (false, _) => "",
                (true, 0) => " counting back from the month's end with ~",
                (true, _) => {
                    " counting back from the month's end with ~ (systemd allows 3 days less \
                     for each further value of a list)"
                }
            };
            Err(format!(
                "{name} {} out of range {}..{}{counted}",
                field.show(value),
                field.show(min),
                show_limit(max)
            ))
        };
        in_range(start)?;
        if repeat > max - min {
            return Err(format!(
                "{name} step {} is larger than the whole range {}..{}",
                field.show(repeat),
                field.show(min),
                show_limit(max)
            ));
        }
        match stop {
            Some(stop) => {
                in_range(stop)?;
                if start > stop {
                    return Err(format!(
                        "{name} range {}..{} goes backwards",
                        field.show(start),
                        field.show(stop)
                    ));
                }
            }
            None if from_end && repeat > start - min => {
                return Err(format!(
                    "{name} ~{}/{} repeats past the end of the month",
                    field.show(start),
                    field.show(repeat),
                ));
            }
            None if !from_end && start + repeat > max => {
                return Err(format!(
                    "{name} {}/{} repeats past {}",
                    field.show(start),
                    field.show(repeat),
                    show_limit(max)
                ));
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(expression: &str) -> String {
        match check_calendar(expression) {
            Ok(()) => panic!("{expression:?} accepted"),
            Err(error) => error.reason,
        }
    }

    /// Expressions systemd accepts.
    const VALID: &[&str] = &[
        "daily",
        "Daily",
        "hourly",
        "minutely",
        "weekly",
        "monthly",
        "yearly",
        "annually",
        "quarterly",
        "semiannually",
        "semi-annually",
        "Mon..Fri *-*-* 09:00",
        "Sat,Sun 10:00",
        "*:0/15",
        "*-*~1",
        "2026-01-01 00:00:00 UTC",
        "*-*-* 03:00:00",
        "mon 09:00",
        "Monday 09:00",
        "Mon-Fri 09:00",
        "Thu,Fri..Sat 1:2",
        "12:00 Europe/Berlin",
        "12:00 right/UTC",
        "12:00 Etc/GMT+5",
        "daily UTC",
        "*:*:0/0.5",
        "00:00:01.5",
        "*-02~03",
        "*-05~1..3",
        "03-05",
        "99-01-01",
        "0..23/2:00",
        "*-*-1..7/2 00:00",
        "*-*-5/26",
        "*:0/59",
        "1970/229-01-01",
        "Mon  *-*-*  1:00",
        "Mon",
        "*-*",
        "2024-02-30",
        "0:0:0.1234567",
        "wednesday..friday",
        "Mon, 1:00",
        "*-*~5/4",
        "*-*~1..3/2",
        "1..2/5:00",
        "1..1:00",
        "23..24/4:*",
        "*-*~10,25",
        "*:*:10.5..20",
        "0..23/24:00",
    ];

    /// Expressions systemd refuses.
    const INVALID: &[&str] = &[
        "",
        "now",
        "25:00",
        "24:00",
        "23:60",
        "00:00:60",
        "Tues 9:00",
        "Fri..Mon 00:00",
        "Mon..Fri..Sun",
        "Mon.Fri",
        "Mon ,Tue",
        "12:00 Mars/Olympus",
        "12:00 europe/berlin",
        "12:00 Europe//Berlin",
        "12:00 /Europe/Berlin",
        "12:00 Europe/Berlin/",
        "12:00 Europe/../Europe/Berlin",
        "12:00 leapseconds",
        "12:00 Europe",
        "*-*-* 00:00:00 +0200",
        "  daily  ",
        "minutely hourly",
        "00:00 weekly",
        "*-13-01",
        "*-00-01",
        "*-01-32",
        "*-01-00",
        "1969-01-01",
        "2200-01-01",
        "05",
        "9:",
        "*:00/0",
        "5..1:00",
        "*/15:00",
        "*,5:00",
        "*-05~29",
        "*-*~1/2",
        "*-*-1/31",
        "5/19:00",
        "2024/230-01-01",
        "*-02-29~1",
        "1:00:00.",
        "*:*:*.123456",
        "*-*-* 1:00 Mon",
        "1 :00",
        "UTC",
        "*-*~1,27",
        "*-*~5/5",
        "Mon..",
        "*-*~1..40/5",
        "*:*:0/60",
    ];

    #[test]
    fn accepts_what_systemd_accepts() {
        for &expression in VALID {
            assert_eq!(check_calendar(expression), Ok(()), "{expression}");
        }
    }

    #[test]
    fn refuses_what_systemd_refuses() {
        for &expression in INVALID {
            assert!(
                check_calendar(expression).is_err(),
                "{expression:?} accepted"
            );
        }
    }

    #[test]
    fn says_which_part_is_wrong() {
        assert_eq!(
            check_calendar("25:00").map_err(|e| e.to_string()),
            Err(
                "\"25:00\" is not a valid calendar expression: hour 25 out of range 0..23"
                    .to_owned()
            )
        );
        assert_eq!(reason("*:60"), "minute 60 out of range 0..59");
        assert_eq!(reason("00:00:60"), "second 60 out of range 0..59");
        assert_eq!(reason("*-13-01"), "month 13 out of range 1..12");
        assert_eq!(reason("*-*-32"), "day 32 out of range 1..31");
        assert_eq!(reason("1969-01-01"), "year 1969 out of range 1970..2199");
        assert_eq!(
            reason("*-*~29"),
            "day 29 out of range 1..28 counting back from the month's end with ~"
        );
        assert_eq!(reason("5..1:00"), "hour range 5..1 goes backwards");
        assert_eq!(reason("5/19:00"), "hour 5/19 repeats past 23");
        assert_eq!(reason("*:0/0"), "a repetition step must be more than 0");
        assert_eq!(
            reason("*-*-1/31"),
            "day step 31 is larger than the whole range 1..31"
        );
        assert_eq!(
            reason("*-*~5/5"),
            "day ~5/5 repeats past the end of the month"
        );
        assert_eq!(
            reason("*-*~1,27"),
            "day 27 out of range 1..25 counting back from the month's end with ~ (systemd \
             allows 3 days less for each further value of a list)"
        );
        assert_eq!(reason("Mon.."), "a weekday range needs an end (Mon..Fri)");
        assert_eq!(reason("Fri..Mon"), "weekday range Fri..Mon goes backwards");
        assert_eq!(
            reason("Tues 9:00"),
            "\"Tues\" is not a weekday (write Mon..Sun or Monday..Sunday)"
        );
        assert_eq!(
            reason("12:00 Mars/Olympus"),
            "\"Mars/Olympus\" is not a known time zone (write UTC or a tz database name such as Europe/Berlin)"
        );
        assert_eq!(
            reason("12:00 Europe//Berlin"),
            "\"Europe//Berlin\" is not a time zone name (letters, digits, \"-_+\", parts \
             separated by single \"/\", such as Europe/Berlin)"
        );
        assert_eq!(reason("9:"), "expected a number or * at \"\"");
        assert_eq!(reason("*/15:00"), "unexpected \"/15:00\" in the date");
        assert_eq!(reason("1:00:00:00"), "unexpected \":00\" in the time");
        assert_eq!(reason(" daily"), "it starts or ends with whitespace");
        assert_eq!(reason(""), "it is empty");
    }

    /// Zones are checked as systemd's `verify_timezone()` does, against a zoneinfo tree.
    #[test]
    fn time_zones_are_regular_tzif_files_under_zoneinfo() {
        let zoneinfo = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = zoneinfo.path();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap_or(dir))
                .and_then(|()| std::fs::write(&path, bytes))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        };
        write("Europe/Berlin", b"TZif2\0\0\0");
        write("leapseconds", b"# Leap seconds\n");
        write("Short", b"TZ");
        std::os::unix::fs::symlink("Europe/Berlin", dir.join("CET"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("leapseconds", dir.join("Leaps"))
            .unwrap_or_else(|e| panic!("{e}"));
        let check = |zone: &str| check_time_zone(zone, dir);
        assert_eq!(check("Europe/Berlin"), Ok(()));
        assert_eq!(check("CET"), Ok(()), "a link to a TZif file is one");
        let not_tzif = |zone: &str| {
            Err(format!(
                "{zone:?} is not a time zone: {} is not a TZif file",
                dir.join(zone).display()
            ))
        };
        assert_eq!(check("leapseconds"), not_tzif("leapseconds"));
        assert_eq!(check("Leaps"), not_tzif("Leaps"));
        assert_eq!(check("Short"), not_tzif("Short"));
        let unknown =
            "is not a known time zone (write UTC or a tz database name such as Europe/Berlin)";
        assert_eq!(
            check("Europe"),
            Err(format!("\"Europe\" {unknown}")),
            "a directory"
        );
        assert_eq!(
            check("Asia/Tokyo"),
            Err(format!("\"Asia/Tokyo\" {unknown}"))
        );
        for malformed in [
            "Europe//Berlin",
            "/Europe/Berlin",
            "Europe/",
            "./CET",
            "Europe/Berlin\n",
        ] {
            assert!(
                check(malformed).is_err_and(|e| e.contains("is not a time zone name")),
                "{malformed:?}"
            );
        }
        // Without a zoneinfo tree (a minimal build container) only the name is judged.
        let missing = dir.join("missing");
        assert_eq!(check_time_zone("Mars/Olympus", &missing), Ok(()));
        assert!(check_time_zone("Mars//Olympus", &missing).is_err());
    }

    #[test]
    fn schedule_reads_and_writes_as_a_string() {
        let schedule: Schedule =
            serde_json::from_str("\"Mon..Fri 09:00\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(schedule.as_str(), "Mon..Fri 09:00");
        assert_eq!(
            serde_json::to_string(&schedule).map_err(|e| e.to_string()),
            Ok("\"Mon..Fri 09:00\"".to_owned())
        );
        assert!(serde_json::from_str::<Schedule>("\"25:00\"").is_err());
    }

    /// The real `systemd-analyze calendar` agrees with every verdict above.
    #[test]
    fn agrees_with_systemd_analyze() {
        let probe = std::process::Command::new("systemd-analyze")
            .arg("--version")
            .output();
        if !probe.is_ok_and(|output| output.status.success()) {
            eprintln!("note: systemd-analyze not found; skipping the comparison with systemd");
            return;
        }
        let mut disagreements = Vec::new();
        for (expression, valid) in VALID
            .iter()
            .map(|e| (e, true))
            .chain(INVALID.iter().map(|e| (e, false)))
        {
            let systemd_accepts = std::process::Command::new("systemd-analyze")
                .args(["calendar", expression])
                .output()
                .is_ok_and(|output| output.status.success());
            let we_accept = check_calendar(expression).is_ok();
            if systemd_accepts != valid || we_accept != systemd_accepts {
                disagreements.push(format!(
                    "{expression:?}: systemd {systemd_accepts}, pyapp {we_accept}"
                ));
            }
        }
        assert!(disagreements.is_empty(), "{disagreements:#?}");
    }
}
