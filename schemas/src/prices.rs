//! The model price catalog and exact cost arithmetic.
//!
//! Prices are held as integer nano-dollars per million tokens, so a call's cost is one integer
//! division (rounded half up) of an exact integer sum: the stored cost, in nano-dollars, sums
//! exactly on every store. The built-in catalog is `prices.toml` beside this crate; the operator
//! adds or overrides entries and prices self-hosted models in the config.

use serde::{Deserialize, Serialize};

use crate::time::{parse_rfc3339, rfc3339};

const BUILTIN_CATALOG: &str = include_str!("../prices.toml");
const NANOS_PER_USD: f64 = 1e9;
const TOKENS_PER_PRICE_UNIT: i128 = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("price catalog: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("price catalog: model {model:?}: {reason}")]
    Invalid { model: String, reason: String },
}

/// Token counts of one model call. `input_tokens` counts all input, cached and cache-write
/// included (the OpenTelemetry GenAI convention); `output_tokens` counts all output, reasoning
/// included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

/// One price entry as written in the catalog or the config: USD per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// Date (`YYYY-MM-DD`) or instant (RFC 3339) from which this price applies.
    pub from: String,
    pub input: f64,
    pub output: f64,
    pub cached_input: Option<f64>,
    pub cache_write: Option<f64>,
    pub reasoning: Option<f64>,
}

/// A model as written in the catalog or in `[[pricing.models]]` of the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub self_hosted: bool,
    #[serde(default)]
    pub prices: Vec<PriceEntry>,
}

/// The price of self-hosted models (GPU time amortised per token), `[pricing.self_hosted]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfHostedPrice {
    pub input: f64,
    pub output: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    version: String,
    models: Vec<ModelEntry>,
}

/// Nano-dollars per million tokens, per token kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: i64,
    pub cached_input: i64,
    pub cache_write: i64,
    pub output: i64,
    pub reasoning: i64,
}

impl Rates {
    fn from_usd(
        input: f64,
        output: f64,
        cached: Option<f64>,
        write: Option<f64>,
        reasoning: Option<f64>,
    ) -> Rates {
        let n = |usd: f64| (usd * NANOS_PER_USD).round() as i64;
        Rates {
            input: n(input),
            cached_input: n(cached.unwrap_or(input)),
            cache_write: n(write.unwrap_or(input)),
            output: n(output),
            reasoning: n(reasoning.unwrap_or(output)),
        }
    }

    /// Cost of one call in nano-dollars, rounded half up once.
    pub fn cost_nanos(&self, usage: &TokenUsage) -> i64 {
        let uncached = usage
            .input
            .saturating_sub(usage.cached_input)
            .saturating_sub(usage.cache_write);
        let plain_output = usage.output.saturating_sub(usage.reasoning);
        let total: i128 = i128::from(uncached) * i128::from(self.input)
            + i128::from(usage.cached_input) * i128::from(self.cached_input)
            + i128::from(usage.cache_write) * i128::from(self.cache_write)
            + i128::from(plain_output) * i128::from(self.output)
            + i128::from(usage.reasoning) * i128::from(self.reasoning);
        let rounded = (total + TOKENS_PER_PRICE_UNIT / 2) / TOKENS_PER_PRICE_UNIT;
        i64::try_from(rounded).unwrap_or(i64::MAX)
    }
}

impl Rates {
    fn view(&self) -> RatesView {
        let usd = |nanos: i64| nanos as f64 / NANOS_PER_USD;
        RatesView {
            input: usd(self.input),
            cached_input: usd(self.cached_input),
            cache_write: usd(self.cache_write),
            output: usd(self.output),
            reasoning: usd(self.reasoning),
        }
    }
}

/// The catalog in force, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = PriceCatalog)]
pub struct CatalogView {
    /// The built-in catalog's version (operator overrides apply on top of it).
    pub version: String,
    pub models: Vec<ModelView>,
    /// The price of self-hosted models without prices of their own; null when none is set.
    #[schema(required = true)]
    pub self_hosted: Option<RatesView>,
}

/// A model's prices, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ModelPrices)]
pub struct ModelView {
    /// Lowercase, as calls are matched.
    pub name: String,
    pub provider: String,
    pub self_hosted: bool,
    pub prices: Vec<PriceView>,
}

/// Prices in force from an instant on.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ModelPrice)]
pub struct PriceView {
    #[schema(format = DateTime)]
    pub from: String,
    #[serde(flatten)]
    pub rates: RatesView,
}

/// USD per million tokens of each kind (a kind without a price of its own takes input's or
/// output's).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = TokenPrices)]
pub struct RatesView {
    pub input: f64,
    pub cached_input: f64,
    pub cache_write: f64,
    pub output: f64,
    pub reasoning: f64,
}

#[derive(Debug, Clone)]
struct PricedModel {
    name: String,
    provider: String,
    self_hosted: bool,
    /// (effective from, in ns since the epoch; rates), sorted by time.
    schedule: Vec<(i64, Rates)>,
}

/// The catalog in force: built-in prices, then the operator's overrides.
#[derive(Debug, Clone)]
pub struct PriceCatalog {
    version: String,
    models: Vec<PricedModel>,
    self_hosted: Option<Rates>,
}

impl PriceCatalog {
    /// The catalog shipped with Vigil.
    pub fn builtin() -> Result<PriceCatalog, PriceError> {
        PriceCatalog::parse(BUILTIN_CATALOG)
    }

    /// Parses a catalog file in the format of `prices.toml`.
    pub fn parse(text: &str) -> Result<PriceCatalog, PriceError> {
        let file: CatalogFile = toml::from_str(text)?;
        let mut catalog = PriceCatalog {
            version: file.version,
            models: Vec::new(),
            self_hosted: None,
        };
        catalog.apply(&file.models)?;
        Ok(catalog)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Every model and price, as the API shows them.
    pub fn view(&self) -> CatalogView {
        let mut models: Vec<ModelView> = self
            .models
            .iter()
            .map(|m| ModelView {
                name: m.name.clone(),
                provider: m.provider.clone(),
                self_hosted: m.self_hosted,
                prices: m
                    .schedule
                    .iter()
                    .map(|(from, rates)| PriceView {
                        from: rfc3339(*from),
                        rates: rates.view(),
                    })
                    .collect(),
            })
            .collect();
        models.sort_by(|a, b| a.name.cmp(&b.name));
        CatalogView {
            version: self.version.clone(),
            models,
            self_hosted: self.self_hosted.map(|r| r.view()),
        }
    }

    /// Adds models, or price entries of known models (an entry with the same date replaces it).
    pub fn apply(&mut self, entries: &[ModelEntry]) -> Result<(), PriceError> {
        for entry in entries {
            let name = entry.name.trim().to_ascii_lowercase();
            if name.is_empty() {
                return Err(PriceError::Invalid {
                    model: entry.name.clone(),
                    reason: "the name is empty".into(),
                });
            }
            let mut schedule = Vec::with_capacity(entry.prices.len());
            for price in &entry.prices {
                let from = parse_rfc3339(&price.from).ok_or_else(|| PriceError::Invalid {
                    model: entry.name.clone(),
                    reason: format!("from = {:?} is not a date (YYYY-MM-DD)", price.from),
                })?;
                for (kind, v) in [
                    ("input", Some(price.input)),
                    ("output", Some(price.output)),
                    ("cached_input", price.cached_input),
                    ("cache_write", price.cache_write),
                    ("reasoning", price.reasoning),
                ] {
                    if let Some(v) = v
                        && !(v.is_finite() && v >= 0.0)
                    {
                        return Err(PriceError::Invalid {
                            model: entry.name.clone(),
                            reason: format!("{kind} = {v} must be a non-negative number"),
                        });
                    }
                }
                schedule.push((
                    from,
                    Rates::from_usd(
                        price.input,
                        price.output,
                        price.cached_input,
                        price.cache_write,
                        price.reasoning,
                    ),
                ));
            }
            match self.models.iter_mut().find(|m| m.name == name) {
                Some(model) => {
                    for (from, rates) in schedule {
                        model.schedule.retain(|(f, _)| *f != from);
                        model.schedule.push((from, rates));
                    }
                    model.schedule.sort_by_key(|(f, _)| *f);
                    model.self_hosted |= entry.self_hosted;
                }
                None => {
                    schedule.sort_by_key(|(f, _)| *f);
                    self.models.push(PricedModel {
                        name,
                        provider: entry.provider.clone(),
                        self_hosted: entry.self_hosted,
                        schedule,
                    });
                }
            }
        }
        Ok(())
    }

    /// Sets the price of self-hosted models that have no price entries of their own.
    pub fn set_self_hosted(&mut self, price: Option<SelfHostedPrice>) {
        self.self_hosted = price.map(|p| Rates::from_usd(p.input, p.output, None, None, None));
    }

    /// The rates for `model` at `at_ns`; `None` when the model is unknown or has no price then.
    pub fn rates(&self, model: &str, at_ns: i64) -> Option<Rates> {
        let found = self.lookup(model)?;
        let dated = found
            .schedule
            .iter()
            .rev()
            .find(|(from, _)| *from <= at_ns)
            .map(|(_, r)| *r);
        match dated {
            Some(r) => Some(r),
            None if found.self_hosted && found.schedule.is_empty() => self.self_hosted,
            None => None,
        }
    }

    /// Cost of one call in nano-dollars; `None` when unpriced.
    pub fn cost_nanos(&self, model: &str, at_ns: i64, usage: &TokenUsage) -> Option<i64> {
        self.rates(model, at_ns).map(|r| r.cost_nanos(usage))
    }

    /// The provider the catalog knows for a model, used when the SDK did not say.
    pub fn provider_of(&self, model: &str) -> Option<&str> {
        self.lookup(model)
            .map(|m| m.provider.as_str())
            .filter(|p| !p.is_empty())
    }

    fn lookup(&self, model: &str) -> Option<&PricedModel> {
        let lowered = model.trim().to_ascii_lowercase();
        let bare = lowered.rsplit('/').next().unwrap_or(&lowered);
        self.models
            .iter()
            .filter(|m| name_matches(&m.name, bare))
            .max_by_key(|m| m.name.len())
    }
}

fn name_matches(catalog_name: &str, model: &str) -> bool {
    match model.strip_prefix(catalog_name) {
        Some("") => true,
        Some(rest) => rest.starts_with(['-', '@', ':', '.']),
        None => false,
    }
}

/// Converts an SDK-reported USD cost to nano-dollars; `None` for negative or non-finite values.
pub fn usd_to_nanos(usd: f64) -> Option<i64> {
    (usd.is_finite() && (0.0..9.2e9).contains(&usd)).then(|| (usd * NANOS_PER_USD).round() as i64)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(date: &str) -> i64 {
        parse_rfc3339(date).unwrap()
    }

    #[test]
    fn builtin_catalog_parses_and_covers_every_vendor() {
        let c = PriceCatalog::builtin().unwrap();
        for model in [
            "gpt-4o",
            "claude-sonnet-4-5",
            "gemini-2.5-pro",
            "mistral-large",
            "gpt-5-mini",
        ] {
            assert!(c.rates(model, at("2026-01-01")).is_some(), "{model}");
        }
        assert_eq!(
            c.provider_of("meta-llama/Llama-3.1-8B-Instruct"),
            Some("vllm")
        );
    }

    #[test]
    fn the_view_shows_the_prices_as_written() {
        let catalog = PriceCatalog::parse(
            r#"
version = "test"
[[models]]
name = "Model-A"
provider = "acme"
prices = [
  { from = "2026-02-01", input = 3.0, output = 15.0 },
  { from = "2026-01-01", input = 2.5, output = 10.0, cached_input = 1.25, reasoning = 12.0 },
]
"#,
        )
        .unwrap();
        let view = catalog.view();
        assert_eq!(view.version, "test");
        assert_eq!(view.self_hosted, None);
        let model = &view.models[0];
        assert_eq!(
            (model.name.as_str(), model.provider.as_str()),
            ("model-a", "acme")
        );
        let first = &model.prices[0];
        assert_eq!(first.from, "2026-01-01T00:00:00Z");
        assert_eq!(
            first.rates,
            RatesView {
                input: 2.5,
                cached_input: 1.25,
                cache_write: 2.5,
                output: 10.0,
                reasoning: 12.0,
            }
        );
        assert_eq!(model.prices[1].rates.input, 3.0);
    }

    #[test]
    fn price_changes_apply_by_call_time() {
        let c = PriceCatalog::builtin().unwrap();
        let usage = TokenUsage {
            input: 1_000_000,
            output: 1_000_000,
            ..Default::default()
        };
        // gpt-4o: $5 + $15 before 2024-10-01, $2.50 + $10 after.
        assert_eq!(
            c.cost_nanos("gpt-4o", at("2024-09-30"), &usage),
            Some(20_000_000_000)
        );
        assert_eq!(
            c.cost_nanos("gpt-4o-2024-08-06", at("2024-10-02"), &usage),
            Some(12_500_000_000)
        );
        assert_eq!(c.cost_nanos("gpt-4o", at("2020-01-01"), &usage), None);
    }

    #[test]
    fn longest_name_wins_and_vendor_prefixes_are_ignored() {
        let c = PriceCatalog::builtin().unwrap();
        let usage = TokenUsage {
            input: 1_000_000,
            ..Default::default()
        };
        let t = at("2026-01-01");
        assert_eq!(c.cost_nanos("gpt-4o-mini", t, &usage), Some(150_000_000));
        assert_eq!(
            c.cost_nanos("openai/gpt-4o-mini-2024-07-18", t, &usage),
            Some(150_000_000)
        );
        assert_eq!(c.cost_nanos("gpt-4omega", t, &usage), None);
    }

    #[test]
    fn cache_and_reasoning_tokens_are_priced_apart() {
        let c = PriceCatalog::builtin().unwrap();
        // claude-sonnet-4-5: input 3.00, cache read 0.30, cache write 3.75, output 15.00.
        let usage = TokenUsage {
            input: 10_000,
            cached_input: 6_000,
            cache_write: 2_000,
            output: 1_000,
            reasoning: 400,
        };
        let expected = 2_000 * 3_000 + 6_000 * 300 + 2_000 * 3_750 + 1_000 * 15_000;
        assert_eq!(
            c.cost_nanos("claude-sonnet-4-5", at("2026-01-01"), &usage),
            Some(expected)
        );
    }

    #[test]
    fn self_hosted_models_are_unpriced_until_configured() {
        let mut c = PriceCatalog::builtin().unwrap();
        let usage = TokenUsage {
            input: 2_000_000,
            output: 1_000_000,
            ..Default::default()
        };
        let t = at("2026-01-01");
        assert_eq!(c.cost_nanos("Qwen/Qwen3-32B", t, &usage), None);
        c.set_self_hosted(Some(SelfHostedPrice {
            input: 0.05,
            output: 0.10,
        }));
        assert_eq!(c.cost_nanos("Qwen/Qwen3-32B", t, &usage), Some(200_000_000));
    }

    #[test]
    fn overrides_add_and_replace() {
        let mut c = PriceCatalog::builtin().unwrap();
        let overrides: Vec<ModelEntry> = toml::from_str::<CatalogFile>(
            r#"
            version = "x"
            [[models]]
            name = "my-finetune"
            prices = [{ from = "2025-01-01", input = 1.0, output = 2.0 }]
            [[models]]
            name = "gpt-4o"
            prices = [{ from = "2026-06-01", input = 1.0, output = 1.0 }]
            "#,
        )
        .unwrap()
        .models;
        c.apply(&overrides).unwrap();
        let usage = TokenUsage {
            input: 1_000_000,
            output: 1_000_000,
            ..Default::default()
        };
        assert_eq!(
            c.cost_nanos("my-finetune", at("2026-01-01"), &usage),
            Some(3_000_000_000)
        );
        assert_eq!(
            c.cost_nanos("gpt-4o", at("2026-07-01"), &usage),
            Some(2_000_000_000)
        );
        assert_eq!(
            c.cost_nanos("gpt-4o", at("2026-05-01"), &usage),
            Some(12_500_000_000)
        );
    }

    #[test]
    fn invalid_prices_are_refused_with_the_model_name() {
        let err = PriceCatalog::parse(
            r#"version = "x"
            [[models]]
            name = "bad"
            prices = [{ from = "someday", input = 1.0, output = 1.0 }]"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"bad\""), "{err}");
    }

    proptest! {
        /// The integer cost equals the exact rational cost rounded half up.
        #[test]
        fn cost_is_exact(input in 0u64..10_000_000, cached in 0u64..10_000_000, output in 0u64..10_000_000,
                         rate_in in 0i64..100_000_000_000, rate_out in 0i64..100_000_000_000) {
            let cached = cached.min(input);
            let rates = Rates { input: rate_in, cached_input: rate_in / 10, cache_write: rate_in, output: rate_out, reasoning: rate_out };
            let usage = TokenUsage { input, cached_input: cached, output, ..Default::default() };
            let exact = (i128::from(input - cached) * i128::from(rate_in)
                + i128::from(cached) * i128::from(rate_in / 10)
                + i128::from(output) * i128::from(rate_out)) as f64 / 1e6;
            let got = rates.cost_nanos(&usage) as f64;
            prop_assert!((got - exact).abs() <= 0.5 + exact * 1e-12);
        }
    }
}
