-- The main experiment: self-introspection of the paper's Net1 on MNIST.
--   lumen experiments/introspect_mnist.lua [--data mnist|fashion] [--seed S]
--        [--threads T] [--out DIR] [--fresh] [--cycles N] [--ae-epochs N]
--        [--est-period T] [--est-cycles N] [--est-epochs N] [--mmd-weight W]
--        [--bandwidths B1,B2,..] [--subset N]
--        [--data-dir DIR] [--noise-max S] [--record-to auto|memory|file]
--        [--paper [--paper-period T] [--paper-cycles N] [--paper-models-lr LR]]
--        [--device cpu|cuda [--graph]]
--
-- --device cuda: the classifier, the recording, the autoencoders and the
-- estimators train and run on the GPU (docs/gpu.md); the figures are drawn
-- on the CPU as always. --graph: the training steps of the classifier,
-- the autoencoders and the estimators as replays of CUDA graphs
-- (docs/gpu.md, "CUDA graphs"), with the same numbers.
-- --paper: the paper's regime as written (docs/method.md, output in
-- results/introspect_<data>_paper): Net1 under a triangular cyclic rate
-- over [0, 1e-5] with cycles of T = 3000 iterations, at most N = 30, early
-- stopping after 5 cycles without a better validation loss; the
-- autoencoders and the estimator in the same regime (peak --paper-models-lr,
-- 1e-3: the paper gives no peak for them); two autoencoders as in its §3.1,
-- the map's on the final recording and one on the learning record that
-- places the trajectories.
--
-- Stages (each cached in DIR and reused on a rerun unless --fresh; a rerun
-- with other options that define the models, recorded in DIR/options.json,
-- is an error rather than a reuse of models they did not make):
--   1. classifier: Net1 trained as in experiments/net1_mnist.lua (with
--      --noise-max S: on inputs with Gaussian noise of a sigma drawn in
--      [0, S] per minibatch, the paper's domain randomisation), recording a
--      fixed seeded subset of 500 training samples at the end of every cycle;
--   2. recording: every hidden ELU output of the training and validation
--      sets (2400 values a sample), in evaluation mode; in memory, or
--      streamed to DIR/recording_*.safetensors and mapped back when it would
--      not fit (--record-to: auto decides by the memory available); the
--      test set's after stage 4, once the training set's has been freed;
--   3. autoencoder: an InfoVAE (2400 -> 200 -> 200 -> 200 -> 2 and back) on the
--      standardised recording, reconstruction + mmd_weight x MMD;
--   4. estimator: 2 -> 200 -> 200 -> 200 -> 1 on log10 of the classifier's
--      per-sample error, in the paper's regime (cycles of --est-period
--      iterations of a cyclic rate over [0, 1e-3], at most --est-cycles, the
--      best on the validation loss); beside it the same network on the
--      recording (--est-epochs epochs);
--   5. figures, metrics.json, atlas.html and index.html.
-- The pipeline is study.mnist (lua/lumen/introspect/study.lua), which
-- experiments/analyses_mnist.lua also runs for its noise-trained Net1. The
-- chunk returns the metrics (also in DIR/metrics.json).
local cli = require 'lumen.cli'
local study = require 'lumen.introspect.study'

local opts, given = cli.parse(arg, study.mnist_defaults(),
  "Self-introspection of Net1: lumen experiments/introspect_mnist.lua [options]\n"
    .. "(--out defaults to results/introspect_<data>, with _paper for --paper; a rerun reuses its models\n"
    .. "only for the same options, recorded in DIR/options.json: --fresh replaces them)", study.mnist_option_help())
-- --paper sets the classifier's, the autoencoder's and the estimator's schedules: these would be ignored
for _, k in ipairs{"cycles", "ae_epochs", "est_period", "est_cycles"} do
  if opts.paper and given[k] then
    cli.usage_error("--paper sets the schedules (--paper-period, --paper-cycles, --paper-models-lr): leave out --%s",
      (k:gsub("_", "-")))
  end
end
return study.mnist(opts)
