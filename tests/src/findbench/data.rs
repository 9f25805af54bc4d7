//! The synthetic, pseudonymous index content of the C-FIND benchmark, generated from a
//! seed so that SQLite, PostgreSQL and Orthanc receive the same logical data.
//!
//! Studies (with their series) are held in memory; instance-level values are derived
//! on demand from the instance's global number, so a million instances never exist
//! as a list.

use time::{Date, Month};

/// Modalities of the synthetic studies.
pub const MODALITIES: [&str; 6] = ["CT", "MR", "CR", "US", "XA", "DX"];
/// Days covered by study dates: ten years from 2015-01-01.
pub const DAYS: u32 = 3653;

const DESCRIPTIONS: [&str; 8] = [
    "CHEST",
    "HEAD W/O CONTRAST",
    "ABDOMEN PELVIS",
    "KNEE LEFT",
    "SPINE LUMBAR",
    "FOLLOW-UP",
    "CORONARY ANGIO",
    "SCREENING",
];
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const LETTERS: &[u8; 26] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Kinds of generated UIDs (kept apart in the low bits, so UIDs never collide).
const UID_STUDY: u64 = 1;
const UID_SERIES: u64 = 2;
const UID_INSTANCE: u64 = 3;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Instances in total.
    pub instances: u64,
    /// Studies (about 20 instances each by default).
    pub studies: u64,
    /// Facilities; facility 0 is the big one (half of the patients).
    pub facilities: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Spec {
    /// `instances` instances in `instances / 20` studies over 5 facilities.
    pub fn new(instances: u64) -> Spec {
        Spec {
            instances,
            studies: (instances / 20).max(1),
            facilities: 5,
            seed: 0x5EED_F1D0,
        }
    }
}

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// SplitMix64's finaliser: a bijection on `u64` that scatters bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64 bits derived from the seed, a kind and a number.
fn hash(seed: u64, kind: u64, n: u64) -> u64 {
    mix(mix(seed ^ kind.wrapping_mul(0xA24B_AED4_963E_E407)) ^ n)
}

/// A `2.25.<decimal>` UID: random high bits, `(kind, n)` in the low bits (unique).
fn uid(seed: u64, kind: u64, n: u64) -> String {
    let low = (kind << 56) | (n & ((1 << 56) - 1));
    let value = (u128::from(hash(seed, kind, n) >> 8) << 64) | u128::from(low);
    format!("2.25.{value}")
}

/// A facility of the benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facility {
    /// Its name in the index.
    pub name: String,
}

/// A (pseudonymous) patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    /// Index into [`Dataset::facilities`].
    pub facility: usize,
    /// Patient ID pseudonym: `P` and 16 base32 characters.
    pub id: String,
    /// Patient Name pseudonym: `ANON^` and 10 letters.
    pub name: String,
    /// Name blind index (4 hex digits).
    pub blind_index: String,
}

/// A series of a study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// Series Instance UID.
    pub uid: String,
    /// Modality.
    pub modality: &'static str,
    /// Series Number (1-based).
    pub number: i64,
    /// Series Description.
    pub description: String,
    /// Global number of its first instance.
    pub first_instance: u64,
    /// How many instances it has.
    pub instances: u64,
}

/// A study with its series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Study {
    /// Index into [`Dataset::facilities`].
    pub facility: usize,
    /// Index into [`Dataset::patients`].
    pub patient: usize,
    /// Study Instance UID.
    pub uid: String,
    /// Study Date, `YYYYMMDD`.
    pub date: String,
    /// Study Time, `HHMMSS`.
    pub time: String,
    /// Accession Number.
    pub accession: String,
    /// Study Description.
    pub description: &'static str,
    /// Its series (1 to 4).
    pub series: Vec<Series>,
}

impl Study {
    /// Instances in the study.
    pub fn instances(&self) -> u64 {
        self.series.iter().map(|s| s.instances).sum()
    }

    /// Distinct modalities, sorted.
    pub fn modalities(&self) -> Vec<&'static str> {
        let mut list: Vec<&'static str> = self.series.iter().map(|s| s.modality).collect();
        list.sort_unstable();
        list.dedup();
        list
    }
}

/// One instance of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// SOP Instance UID.
    pub uid: String,
    /// SOP Class UID (from the modality).
    pub sop_class: &'static str,
    /// Instance Number (1-based within the series).
    pub number: i64,
    /// Size of the stored data set, bytes.
    pub size: i64,
    /// SHA-256 (hex) of the stored data set.
    pub sha256: String,
}

/// The whole generated content.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The spec it was generated from.
    pub spec: Spec,
    /// Facilities (`bench-0` is the big one).
    pub facilities: Vec<Facility>,
    /// Patients, about 20 studies each.
    pub patients: Vec<Patient>,
    /// Studies in generation order.
    pub studies: Vec<Study>,
}

fn chars(mut bits: u128, alphabet: &[u8], count: usize) -> String {
    let base = alphabet.len() as u128;
    (0..count)
        .map(|_| {
            let c = alphabet[(bits % base) as usize] as char;
            bits /= base;
            c
        })
        .collect()
}

fn date_string(day: u32) -> String {
    let start = Date::from_calendar_date(2015, Month::January, 1).unwrap_or(Date::MIN);
    let date = start
        .checked_add(time::Duration::days(i64::from(day)))
        .unwrap_or(start);
    format!(
        "{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The study date of day `day` after 2015-01-01 (`YYYYMMDD`).
pub fn day_to_date(day: u32) -> String {
    date_string(day)
}

impl Dataset {
    /// Generates the studies of `spec` (instances are derived on demand).
    pub fn generate(spec: Spec) -> Dataset {
        let seed = spec.seed;
        let facilities = (0..spec.facilities.max(1))
            .map(|f| Facility {
                name: format!("bench-{f}"),
            })
            .collect::<Vec<_>>();
        let nf = facilities.len() as u64;
        let patients = (0..spec.studies.div_ceil(20).max(1))
            .map(|p| {
                // Half of the patients in facility 0, the rest spread over the others.
                let facility = if nf == 1 || p % 2 == 0 {
                    0
                } else {
                    1 + (p / 2) % (nf - 1)
                };
                let bits = (u128::from(hash(seed, 10, p)) << 64) | u128::from(hash(seed, 11, p));
                Patient {
                    facility: facility as usize,
                    id: format!("P{}", chars(bits, BASE32, 16)),
                    name: format!("ANON^{}", chars(bits >> 80, LETTERS, 10)),
                    blind_index: format!("{:04x}", hash(seed, 12, p) & 0xffff),
                }
            })
            .collect::<Vec<_>>();
        let mut rng = Rng::new(seed);
        let base = spec.instances / spec.studies.max(1);
        let extra = spec.instances % spec.studies.max(1);
        let mut next_instance = 0;
        let mut next_series = 0;
        let mut delta = 0i64;
        let mut studies = Vec::with_capacity(spec.studies as usize);
        for s in 0..spec.studies {
            // Pairs of studies differ by +-delta instances, keeping the exact total.
            let mut count = (base + u64::from(s < extra)) as i64;
            if s % 2 == 0 && s + 1 < spec.studies && base >= 4 {
                let spread = (base / 2) as i64;
                delta = rng.below(2 * spread as u64 + 1) as i64 - spread;
                count += delta;
            } else if s % 2 == 1 {
                count -= delta;
                delta = 0;
            }
            let count = count.max(1) as u64;
            let patient = rng.below(patients.len() as u64) as usize;
            let primary = MODALITIES[rng.below(MODALITIES.len() as u64) as usize];
            let nseries = (1 + rng.below(4)).min(count);
            let mut series = Vec::with_capacity(nseries as usize);
            let mut left = count;
            for k in 0..nseries {
                let n = if k + 1 == nseries {
                    left
                } else {
                    1 + rng.below(left - (nseries - k) + 1)
                };
                left -= n;
                let modality = if k > 0 && rng.below(5) == 0 {
                    MODALITIES[rng.below(MODALITIES.len() as u64) as usize]
                } else {
                    primary
                };
                series.push(Series {
                    uid: uid(seed, UID_SERIES, next_series),
                    modality,
                    number: k as i64 + 1,
                    description: format!("{modality} SERIES {}", k + 1),
                    first_instance: next_instance,
                    instances: n,
                });
                next_series += 1;
                next_instance += n;
            }
            let day = rng.below(u64::from(DAYS)) as u32;
            let secs = rng.below(86_400);
            studies.push(Study {
                facility: patients[patient].facility,
                patient,
                uid: uid(seed, UID_STUDY, s),
                date: date_string(day),
                time: format!("{:02}{:02}{:02}", secs / 3600, secs / 60 % 60, secs % 60),
                accession: format!("A{:09}", hash(seed, 13, s) % 1_000_000_000),
                description: DESCRIPTIONS[rng.below(DESCRIPTIONS.len() as u64) as usize],
                series,
            });
        }
        Dataset {
            spec,
            facilities,
            patients,
            studies,
        }
    }

    /// Instances in total.
    pub fn instance_count(&self) -> u64 {
        self.studies.iter().map(Study::instances).sum()
    }

    /// The `k`-th instance (0-based) of `series`.
    pub fn instance(&self, series: &Series, k: u64) -> Instance {
        let n = series.first_instance + k;
        let h = |i: u64| hash(self.spec.seed, 20 + i, n);
        Instance {
            uid: uid(self.spec.seed, UID_INSTANCE, n),
            sop_class: sop_class(series.modality),
            number: k as i64 + 1,
            size: 100_000 + (h(0) % 500_000) as i64,
            sha256: format!("{:016x}{:016x}{:016x}{:016x}", h(1), h(2), h(3), h(4)),
        }
    }

    /// Bytes standing in for a sealed-identity envelope (`len` bytes).
    pub fn envelope(&self, kind: u64, n: u64, len: usize) -> Vec<u8> {
        (0..len.div_ceil(8) as u64)
            .flat_map(|i| hash(self.spec.seed, 100 + kind, n * 64 + i).to_le_bytes())
            .take(len)
            .collect()
    }
}

/// The storage SOP class of a modality's images.
pub fn sop_class(modality: &str) -> &'static str {
    match modality {
        "CT" => "1.2.840.10008.5.1.4.1.1.2",
        "MR" => "1.2.840.10008.5.1.4.1.1.4",
        "CR" => "1.2.840.10008.5.1.4.1.1.1",
        "US" => "1.2.840.10008.5.1.4.1.1.6.1",
        "XA" => "1.2.840.10008.5.1.4.1.1.12.1",
        _ => "1.2.840.10008.5.1.4.1.1.1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_values_follow_the_spec() {
        let data = Dataset::generate(Spec::new(20_017));
        assert_eq!(data.instance_count(), 20_017);
        assert_eq!(data.studies.len(), 1000);
        let again = Dataset::generate(Spec::new(20_017));
        assert_eq!(data.studies, again.studies, "deterministic");
        let mut uids: Vec<&str> = data.studies.iter().map(|s| s.uid.as_str()).collect();
        uids.sort_unstable();
        uids.dedup();
        assert_eq!(uids.len(), 1000);
        for study in &data.studies {
            assert!((1..=4).contains(&study.series.len()));
            assert!(study.uid.len() <= 64 && study.uid.starts_with("2.25."));
            assert!(study.date.as_str() >= "20150101" && study.date.as_str() <= "20241231");
            let p = &data.patients[study.patient];
            assert_eq!(p.id.len(), 17);
            assert_eq!(p.name.len(), 15);
            assert_eq!(p.facility, study.facility);
        }
        let big = data.studies.iter().filter(|s| s.facility == 0).count();
        assert!(big > 400 && big < 600, "facility 0 has about half: {big}");
    }
}
