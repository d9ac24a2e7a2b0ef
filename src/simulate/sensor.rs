//! One simulated production-line sensor, as `clients/python/sensor_sim.py` models it: a temperature (~20) and a pH
//! (~5) that drift in a mean-reverting random walk with measurement noise, and now and then go on an excursion of a
//! few readings below 10 degrees or above pH 5.5, which the default rules watch for.

use alertstream_engine::Values;

/// One sensor's drift and excursions.
#[derive(Debug)]
pub struct Sensor {
    /// Its id.
    pub id: String,
    rng: fastrand::Rng,
    excursion_rate: f64,
    temp_drift: f64,
    ph_drift: f64,
    /// Readings left in a cold excursion, and how far it goes below the set point.
    cold: (u32, f64),
    /// Readings left in an acid excursion, and how far it goes above the set point.
    acid: (u32, f64),
}

impl Sensor {
    /// A sensor `id` whose random draws start from `seed`; an excursion starts on a reading with probability
    /// `excursion_rate`, for each metric.
    pub fn new(id: String, seed: u64, excursion_rate: f64) -> Self {
        let rng = fastrand::Rng::with_seed(seed);
        Self { id, rng, excursion_rate, temp_drift: 0.0, ph_drift: 0.0, cold: (0, 0.0), acid: (0, 0.0) }
    }

    /// The next reading's values.
    pub fn read(&mut self) -> Values {
        self.temp_drift += -0.05 * self.temp_drift + self.gauss(0.15);
        self.ph_drift += -0.05 * self.ph_drift + self.gauss(0.01);
        if self.cold.0 == 0 && self.rng.f64() < self.excursion_rate {
            self.cold = (self.rng.u32(3..=8), 11.0 + self.rng.f64() * 4.0);
        }
        if self.acid.0 == 0 && self.rng.f64() < self.excursion_rate {
            self.acid = (self.rng.u32(3..=8), 0.7 + self.rng.f64() * 0.5);
        }
        let mut temperature = 20.0 + self.temp_drift + self.gauss(0.3);
        if self.cold.0 > 0 {
            temperature -= self.cold.1;
            self.cold.0 -= 1;
        }
        let mut ph = 5.0 + self.ph_drift + self.gauss(0.03);
        if self.acid.0 > 0 {
            ph += self.acid.1;
            self.acid.0 -= 1;
        }
        let round = |v: f64, places: i32| (v * 10f64.powi(places)).round() / 10f64.powi(places);
        Values::from_iter([("temperature".to_owned(), round(temperature, 2)), ("pH".to_owned(), round(ph, 3))])
    }

    /// A normal draw with standard deviation `sigma` (Box-Muller).
    fn gauss(&mut self, sigma: f64) -> f64 {
        let u = 1.0 - self.rng.f64();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.rng.f64()).cos() * sigma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_readings_and_excursions_cross_the_default_thresholds() {
        let run = |seed| {
            let mut sensor = Sensor::new("s".into(), seed, 0.05);
            (0..2000).map(|_| sensor.read()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let readings = run(7);
        assert!(readings.iter().any(|v| v["temperature"] < 10.0), "a cold excursion");
        assert!(readings.iter().any(|v| v["pH"] > 5.5), "an acid excursion");
        let calm = readings.iter().filter(|v| (15.0..25.0).contains(&v["temperature"])).count();
        assert!(calm > 1500, "mostly near the set point: {calm}");
    }
}
