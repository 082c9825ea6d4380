//! A random forest of linfa-trees decision trees that gives probabilities.
//!
//! linfa-ensemble's forest returns majority votes and does not serialise, so the forest is
//! built here: each tree is a linfa `DecisionTree` fitted on a class-balanced bootstrap of
//! the rows and a random subset of the features, then flattened into a node array whose
//! every node holds the weighted share of failing rows that reached it. A score is the
//! mean leaf share over the trees; an explanation walks the same paths and credits each
//! split's change in share to its feature.

#[cfg(feature = "train")]
use linfa::prelude::*;
#[cfg(feature = "train")]
use linfa_trees::{DecisionTree, SplitQuality, TreeNode};
#[cfg(feature = "train")]
use ndarray::{Array1, Array2, ArrayView2};
#[cfg(feature = "train")]
use rand::distr::{weighted::WeightedIndex, Distribution};
#[cfg(feature = "train")]
use rand::seq::index;
#[cfg(feature = "train")]
use rand::{RngExt, SeedableRng};
#[cfg(feature = "train")]
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

#[cfg(feature = "train")]
use crate::TrainError;

#[cfg(feature = "train")]
/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    /// Number of trees.
    pub trees: usize,
    /// Deepest split level.
    pub max_depth: usize,
    /// Least weight of rows in a leaf.
    pub min_leaf_weight: f32,
    /// Share of the features each tree may split on.
    pub feature_share: f64,
    /// Healthy rows drawn per failing row in each tree's bootstrap (weighted back to
    /// balance, so more of them adds coverage, not bias).
    pub neg_per_pos: f64,
}

#[cfg(feature = "train")]
impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            trees: 100,
            max_depth: 8,
            min_leaf_weight: 3.0,
            feature_share: 0.5,
            neg_per_pos: 4.0,
        }
    }
}

/// One flattened node: a split `x[feature] <= threshold` goes left, or a leaf when
/// `left == 0`. `value` is the weighted share of failing rows that reached the node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node(pub u16, pub f64, pub u32, pub u32, pub f64);

impl Node {
    fn is_leaf(&self) -> bool {
        self.2 == 0
    }
}

/// One tree: nodes with the root first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The nodes.
    pub nodes: Vec<Node>,
}

impl Tree {
    fn leaf(&self, z: &[f64]) -> &Node {
        let mut node = &self.nodes[0];
        while !node.is_leaf() {
            let next = if z[usize::from(node.0)] <= node.1 {
                node.2
            } else {
                node.3
            };
            node = &self.nodes[next as usize];
        }
        node
    }

    fn add_contributions(&self, z: &[f64], out: &mut [f64]) {
        let mut node = &self.nodes[0];
        while !node.is_leaf() {
            let feature = usize::from(node.0);
            let next = &self.nodes[if z[feature] <= node.1 { node.2 } else { node.3 } as usize];
            out[feature] += next.4 - node.4;
            node = next;
        }
    }
}

/// A fitted forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    /// The trees.
    pub trees: Vec<Tree>,
}

impl Forest {
    #[cfg(feature = "train")]
    /// Fits on rows `z` with labels `y`, deterministically for `seed`. `progress` is called
    /// after each tree with the number done. Returns the forest and the (balanced) prior
    /// its leaf shares are relative to. With `weights` (one per row, above 0) each
    /// tree's bootstrap draws rows in proportion to their weight within their class, so
    /// a row of weight 50 counts as 50 rows would.
    pub fn fit(
        z: ArrayView2<'_, f64>,
        y: &[bool],
        weights: Option<&[f64]>,
        params: &ForestParams,
        seed: u64,
        progress: &dyn Fn(usize),
    ) -> Result<(Self, f64), TrainError> {
        let positives: Vec<usize> = (0..y.len()).filter(|&i| y[i]).collect();
        let negatives: Vec<usize> = (0..y.len()).filter(|&i| !y[i]).collect();
        if positives.is_empty() || negatives.is_empty() {
            return Err(TrainError::OneClass);
        }
        if z.ncols() > usize::from(u16::MAX) {
            return Err(TrainError::Fit("too many features".into()));
        }
        let n_features =
            ((z.ncols() as f64 * params.feature_share).ceil() as usize).clamp(1, z.ncols());
        let n_neg = ((positives.len() as f64 * params.neg_per_pos).round() as usize).max(1);
        // Weights make each class weigh the same in every tree. A healthy row's weight is
        // nudged off the exact ratio so no leaf is ever a perfect tie: linfa breaks ties
        // in hash order, which would make pruning, and so the forest, vary between runs
        // (pitfall 24).
        let neg_weight = (positives.len() as f64 / n_neg as f64 * (1.0 - 1e-4)) as f32;
        // Unit weights keep the uniform draw, so an unweighted forest is as before.
        let draw = |class: &[usize]| -> Result<Option<WeightedIndex<f64>>, TrainError> {
            match weights {
                Some(w) if class.iter().any(|&i| w[i] != 1.0) => {
                    WeightedIndex::new(class.iter().map(|&i| w[i]))
                        .map(Some)
                        .map_err(|e| TrainError::Fit(format!("row weights: {e}")))
                }
                _ => Ok(None),
            }
        };
        let (pos_draw, neg_draw) = (draw(&positives)?, draw(&negatives)?);
        // Each tree has its own seed, so trees grow on as many threads as the machine
        // has and the forest is the same whatever the count: tree `t` lands in slot `t`.
        let grow = |t: usize| -> Result<Tree, TrainError> {
            let mut rng =
                Pcg64Mcg::seed_from_u64(seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut rows = Vec::with_capacity(positives.len() + n_neg);
            let mut pick = |class: &[usize], by: &Option<WeightedIndex<f64>>| match by {
                Some(d) => class[d.sample(&mut rng)],
                None => class[rng.random_range(0..class.len())],
            };
            for _ in 0..positives.len() {
                let r = pick(&positives, &pos_draw);
                rows.push(r);
            }
            for _ in 0..n_neg {
                let r = pick(&negatives, &neg_draw);
                rows.push(r);
            }
            let mut cols = index::sample(&mut rng, z.ncols(), n_features).into_vec();
            cols.sort_unstable();
            let x: Array2<f64> = z
                .select(ndarray::Axis(0), &rows)
                .select(ndarray::Axis(1), &cols);
            let labels: Array1<bool> = rows.iter().map(|&i| y[i]).collect();
            let weights: Array1<f32> = labels
                .iter()
                .map(|&l| if l { 1.0 } else { neg_weight })
                .collect();
            let data = Dataset::new(x, labels).with_weights(weights);
            let fitted = DecisionTree::params()
                .split_quality(SplitQuality::Gini)
                .max_depth(Some(params.max_depth))
                .min_weight_leaf(params.min_leaf_weight)
                .min_weight_split(2.0 * params.min_leaf_weight)
                .fit(&data)
                .map_err(|e| TrainError::Fit(e.to_string()))?;
            Ok(flatten(&fitted, &cols, &data))
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, params.trees.max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let slots: std::sync::Mutex<Vec<Option<Result<Tree, TrainError>>>> =
            std::sync::Mutex::new((0..params.trees).map(|_| None).collect());
        // Takes trees off the shared counter until none is left; `report` is called
        // with the count grown so far after each (only on the calling thread).
        let work = |report: &dyn Fn(usize)| loop {
            let t = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if t >= params.trees {
                break;
            }
            let tree = grow(t);
            slots.lock().unwrap_or_else(|e| e.into_inner())[t] = Some(tree);
            report(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
        };
        let reported = std::cell::Cell::new(0);
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(|| work(&|_| {}));
            }
            work(&|n| {
                reported.set(n);
                progress(n);
            });
        });
        let trees = slots
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .map(|t| t.expect("every tree was grown"))
            .collect::<Result<Vec<Tree>, TrainError>>()?;
        if reported.get() < params.trees {
            progress(params.trees);
        }
        Ok((Forest { trees }, 0.5))
    }

    /// The mean leaf share over the trees, in the balanced prior.
    pub fn share(&self, z: &[f64]) -> f64 {
        self.trees.iter().map(|t| t.leaf(z).4).sum::<f64>() / self.trees.len() as f64
    }

    /// Each feature's contribution to [`Forest::share`]: the change in share at each
    /// split on the feature along the row's path, averaged over the trees. The
    /// contributions sum to the share minus the mean root share.
    pub fn contributions(&self, z: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; z.len()];
        for t in &self.trees {
            t.add_contributions(z, &mut out);
        }
        let n = self.trees.len() as f64;
        out.iter_mut().for_each(|c| *c /= n);
        out
    }

    /// The mean root share: the share before any split.
    pub fn base_share(&self) -> f64 {
        self.trees.iter().map(|t| t.nodes[0].4).sum::<f64>() / self.trees.len() as f64
    }
}

#[cfg(feature = "train")]
/// Flattens a fitted tree, mapping its column indices back to schema indices and giving
/// every node the weighted share of failing rows of the tree's own sample that reach it.
fn flatten(
    tree: &DecisionTree<f64, bool>,
    cols: &[usize],
    data: &DatasetBase<Array2<f64>, Array1<bool>>,
) -> Tree {
    let mut nodes = Vec::new();
    push(tree.root_node(), cols, &mut nodes);
    // Route the sample: (failing weight, total weight) per node.
    let mut sums = vec![(0.0f64, 0.0f64); nodes.len()];
    let targets = data.targets();
    for (i, row) in data.records().rows().into_iter().enumerate() {
        let w = f64::from(data.weight_for(i));
        let pos = if targets[i] { w } else { 0.0 };
        let mut at = 0usize;
        loop {
            sums[at].0 += pos;
            sums[at].1 += w;
            let node = nodes[at];
            if node.is_leaf() {
                break;
            }
            // The node's feature is a schema index; the sample's columns are `cols`.
            let local = cols
                .iter()
                .position(|&c| c == usize::from(node.0))
                .unwrap_or(0);
            at = if row[local] <= node.1 { node.2 } else { node.3 } as usize;
        }
    }
    for (node, (pos, total)) in nodes.iter_mut().zip(sums) {
        // A light prior toward one half keeps a leaf of two rows from claiming certainty.
        node.4 = (pos + 0.5) / (total + 1.0);
    }
    Tree { nodes }
}

#[cfg(feature = "train")]
fn push(node: &TreeNode<f64, bool>, cols: &[usize], nodes: &mut Vec<Node>) -> u32 {
    let at = nodes.len();
    nodes.push(Node(0, 0.0, 0, 0, 0.0));
    let children = node.children();
    if let (false, Some(left), Some(right)) = (node.is_leaf(), children[0], children[1]) {
        let (feature, threshold, _) = node.split();
        let l = push(left, cols, nodes);
        let r = push(right, cols, nodes);
        nodes[at] = Node(cols[feature] as u16, threshold, l, r, 0.0);
    }
    at as u32
}
