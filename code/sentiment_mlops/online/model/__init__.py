"""Score the project's fitted Spark PipelineModel in plain Python, without a JVM.

The online server must answer in milliseconds and must not start Spark, so this package reads the
saved stage folders of the MLflow Spark artifact directly (each stage's `metadata/` JSON and
`data/` Parquet, with pyarrow) and reproduces every stage with Spark's own arithmetic:

    SQLTransformer (text_cleaning.clean_text, after checking the saved SQL is one version of cleaning_sql())
    -> RegexTokenizer -> StopWordsRemover [-> NGram(2) -> SQLTransformer terms_sql() (features.terms)]
    -> HashingTF (murmur3, seed 42) -> IDF
    [-> StopWordsRemover per lexicon bucket -> SQLTransformer counts_sql() -> VectorAssembler (features.lexicon)]
    [-> ElementwiseProduct (NB scaling)]
    -> LogisticRegression | RandomForestClassificationModel | LinearSVC

Predictions equal Spark's `model.transform` (tests/integration/test_spark_free_model.py checks every
stage on real tweets): sums run in Spark's order (no numpy reductions, no pairwise or compensated
sums), so labels, raw predictions and probabilities are the same doubles. One caveat: the logistic
probability goes through exp(), which is Java's Math.exp in Spark and the C library's here; both
are within 1 ulp of the true value and usually agree to the last bit, but not always: with the
v2 features one real tweet in about 400 got a probability 1 ulp away, and a probability near 0.03 was
seen 2 ulps away (1 ulp of exp carried through `1 + e` and the division); labels and margins are equal.
LinearSVC has no probability in Spark; `Prediction.probability` is then None
(its margin is in `raw_prediction`).

Anything else (another stage type, another cleaning SQL, a multinomial model, class thresholds)
is refused at load time with UnsupportedModelError rather than scored approximately.

Modules: `hashing` (murmur3 / HashingTF indices), `artifacts` (reading the saved stage folders),
`stages` (each stage as a callable, the classifiers, `Prediction`), `model` (`SparkFreeModel` and
its loading and checks).
"""

from sentiment_mlops.online.model.artifacts import UnsupportedModelError
from sentiment_mlops.online.model.hashing import murmur3_x86_32, term_index
from sentiment_mlops.online.model.model import SparkFreeModel, load_local, load_model, load_spark_ml_dir
from sentiment_mlops.online.model.stages import Prediction, RegexTokenizerStage

__all__ = [
    "Prediction",
    "RegexTokenizerStage",
    "SparkFreeModel",
    "UnsupportedModelError",
    "load_local",
    "load_model",
    "load_spark_ml_dir",
    "murmur3_x86_32",
    "term_index",
]
