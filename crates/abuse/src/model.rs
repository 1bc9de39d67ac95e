//! The learned part of the score: a logistic regression over standardised features.
//!
//! The weights are trained offline on simulated traffic (`sirr-abuse train`) and shipped in the
//! repository as `model.json`, compiled in with `include_str!`, so every `sirrd` and every replay
//! scores with exactly the same model.

use serde::{Deserialize, Serialize};

use crate::features::{FEATURE_NAMES, N_FEATURES};

const SHIPPED: &str = include_str!("../model.json");

/// A logistic regression: `p = sigmoid(bias + sum(weights[i] * (x[i] - mean[i]) / scale[i]))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Feature names in order; must equal [`FEATURE_NAMES`].
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
    /// How the model was made (seeds, population), for the record.
    #[serde(default)]
    pub trained_on: String,
}

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("model is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("model features {found:?} differ from the engine's {expected:?}")]
    Features {
        found: Vec<String>,
        expected: Vec<String>,
    },
    #[error("model vectors must all have {N_FEATURES} finite entries and positive scales")]
    Shape,
}

impl Model {
    /// The model shipped in the repository.
    pub fn shipped() -> Result<Model, ModelError> {
        Model::from_json(SHIPPED)
    }

    /// A model that finds nobody suspicious (p ≈ 0.00005 for every account): the fixed starting
    /// point of training, so that training does not depend on the model it replaces.
    pub fn untrained() -> Model {
        Model {
            features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            mean: vec![0.0; N_FEATURES],
            scale: vec![1.0; N_FEATURES],
            weights: vec![0.0; N_FEATURES],
            bias: -10.0,
            trained_on: "untrained".into(),
        }
    }

    /// Parses and checks a model file.
    pub fn from_json(text: &str) -> Result<Model, ModelError> {
        let model: Model = serde_json::from_str(text)?;
        model.check()?;
        Ok(model)
    }

    fn check(&self) -> Result<(), ModelError> {
        if self
            .features
            .iter()
            .map(String::as_str)
            .ne(FEATURE_NAMES.iter().copied())
        {
            return Err(ModelError::Features {
                found: self.features.clone(),
                expected: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            });
        }
        let ok = |v: &[f64]| v.len() == N_FEATURES && v.iter().all(|x| x.is_finite());
        if !ok(&self.mean) || !ok(&self.scale) || !ok(&self.weights) || !self.bias.is_finite() {
            return Err(ModelError::Shape);
        }
        if self.scale.iter().any(|&s| s <= 0.0) {
            return Err(ModelError::Shape);
        }
        Ok(())
    }

    /// The per-feature contributions to the logit (`weight * standardised value`).
    pub fn contributions(&self, x: &[f32; N_FEATURES]) -> [f64; N_FEATURES] {
        let mut c = [0.0; N_FEATURES];
        for (i, ci) in c.iter_mut().enumerate() {
            *ci = self.weights[i] * (f64::from(x[i]) - self.mean[i]) / self.scale[i];
        }
        c
    }

    /// The probability that the account is abusive.
    pub fn score(&self, x: &[f32; N_FEATURES]) -> f64 {
        sigmoid(self.bias + self.contributions(x).iter().sum::<f64>())
    }

    /// Fits a model to `samples` (features, label, weight) by iteratively reweighted least
    /// squares (Newton's method) with an L2 penalty `l2` on the standardised weights.
    #[allow(clippy::needless_range_loop)] // matrix code reads best with indices
    pub fn fit(samples: &[([f32; N_FEATURES], bool, f64)], l2: f64, trained_on: String) -> Model {
        let total: f64 = samples.iter().map(|s| s.2).sum::<f64>().max(f64::MIN_POSITIVE);
        let mut mean = [0.0f64; N_FEATURES];
        for (x, _, w) in samples {
            for i in 0..N_FEATURES {
                mean[i] += w * f64::from(x[i]);
            }
        }
        mean.iter_mut().for_each(|m| *m /= total);
        let mut scale = [0.0f64; N_FEATURES];
        for (x, _, w) in samples {
            for i in 0..N_FEATURES {
                scale[i] += w * (f64::from(x[i]) - mean[i]).powi(2);
            }
        }
        scale.iter_mut().for_each(|s| *s = (*s / total).sqrt().max(1e-6));

        const D: usize = N_FEATURES + 1;
        let z = |x: &[f32; N_FEATURES]| {
            let mut z = [1.0f64; D];
            for i in 0..N_FEATURES {
                z[i] = (f64::from(x[i]) - mean[i]) / scale[i];
            }
            z
        };
        let mut beta = [0.0f64; D];
        for _ in 0..30 {
            let mut grad = [0.0f64; D];
            let mut hess = [[0.0f64; D]; D];
            for (x, y, w) in samples {
                let zi = z(x);
                let logit: f64 = zi.iter().zip(&beta).map(|(a, b)| a * b).sum();
                let p = sigmoid(logit);
                let r = p - if *y { 1.0 } else { 0.0 };
                let h = (p * (1.0 - p)).max(1e-9) * w;
                for a in 0..D {
                    grad[a] += w * r * zi[a];
                    for b in 0..=a {
                        hess[a][b] += h * zi[a] * zi[b];
                    }
                }
            }
            for a in 0..D {
                for b in 0..a {
                    hess[b][a] = hess[a][b];
                }
                if a < N_FEATURES {
                    grad[a] += l2 * total * beta[a];
                    hess[a][a] += l2 * total;
                }
            }
            let step = solve(hess, grad);
            let mut change = 0.0f64;
            for a in 0..D {
                beta[a] -= step[a];
                change = change.max(step[a].abs());
            }
            if change < 1e-6 {
                break;
            }
        }
        Model {
            features: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            mean: mean.to_vec(),
            scale: scale.to_vec(),
            weights: beta[..N_FEATURES].to_vec(),
            bias: beta[N_FEATURES],
            trained_on,
        }
    }
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Solves `a * x = b` by Gaussian elimination with partial pivoting (a is symmetric positive
/// definite here, thanks to the L2 term); a singular pivot yields a zero step in that direction.
#[allow(clippy::needless_range_loop)]
fn solve<const D: usize>(mut a: [[f64; D]; D], mut b: [f64; D]) -> [f64; D] {
    for col in 0..D {
        let pivot = (col..D)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        if a[col][col].abs() < 1e-12 {
            continue;
        }
        for row in col + 1..D {
            let f = a[row][col] / a[col][col];
            for k in col..D {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; D];
    for row in (0..D).rev() {
        if a[row][row].abs() < 1e-12 {
            continue;
        }
        let s: f64 = (row + 1..D).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_model_loads() {
        Model::shipped().unwrap();
    }

    #[test]
    fn a_model_with_other_features_is_refused() {
        let mut m = Model::shipped().unwrap();
        m.features[0] = "something_else".into();
        let err = Model::from_json(&serde_json::to_string(&m).unwrap()).unwrap_err();
        assert!(matches!(err, ModelError::Features { .. }));
        let mut m = Model::shipped().unwrap();
        m.scale[3] = 0.0;
        assert!(matches!(
            Model::from_json(&serde_json::to_string(&m).unwrap()),
            Err(ModelError::Shape)
        ));
    }

    #[test]
    fn fit_learns_a_separable_signal_and_ignores_noise() {
        let mut samples = Vec::new();
        for i in 0..2000u32 {
            let mut x = [0.0f32; N_FEATURES];
            let bad = i % 4 == 0;
            x[7] = if bad { 3.0 } else { 0.5 } + (i % 7) as f32 * 0.1;
            x[0] = (i % 13) as f32;
            samples.push((x, bad, 1.0));
        }
        let m = Model::fit(&samples, 1e-3, "test".into());
        assert!(m.weights[7] > 1.0, "{:?}", m.weights);
        assert!(m.weights[0].abs() < 0.5, "{:?}", m.weights);
        let mut bad = [0.0f32; N_FEATURES];
        bad[7] = 3.2;
        assert!(m.score(&bad) > 0.9);
        let mut good = [0.0f32; N_FEATURES];
        good[7] = 0.6;
        assert!(m.score(&good) < 0.1);
    }
}
