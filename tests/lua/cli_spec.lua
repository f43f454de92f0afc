-- lumen.cli: the experiments' command-line options.
local cli = require 'lumen.cli'

local defaults = {epochs = 30, lr = 1e-3, data = "mnist", paper = false, resume = true, batch_size = 128}

describe("cli.parse", function()
  it("reads --name value, --name=value, flags and their negations", function()
    local o = cli.parse({"--epochs", "5", "--lr=0.5", "--data", "cifar10", "--paper", "--no-resume",
      "--batch-size", "64"}, defaults)
    same(o, {epochs = 5, lr = 0.5, data = "cifar10", paper = true, resume = false, batch_size = 64})
    eq(math.type(o.epochs), "integer")
    same(cli.parse({}, defaults), defaults)
    eq(cli.parse({"--paper=True"}, defaults).paper, true)
    eq(cli.parse({"--paper=off"}, defaults).paper, false)
    eq(cli.parse({"--resume", "false", "--epochs", "2"}, defaults).resume, false)
    eq(cli.parse({"--resume", "--epochs", "2"}, defaults).resume, true)
    eq(cli.parse({"--no-resume=false"}, defaults).resume, true)
    eq(cli.parse({"--no-resume=true"}, defaults).resume, false)
  end)

  it("says which options the command line gave", function()
    local _, given = cli.parse({"--epochs", "5", "--no-paper"}, defaults)
    same(given, {epochs = true, paper = true})
  end)

  -- a mistake ends the process: message on stderr, status 2
  local build = os.getenv("LUMEN_BUILD_DIR") or "build"
  -- what `lumen -e script` prints, and its exit status
  local function lumen_e(script)
    local p = io.popen(string.format("'%s/lumen' -e \"%s\" 2>&1; echo \"status $?\"", build, script))
    local out = p:read("a")
    p:close()
    return out
  end
  local function run(args)
    return lumen_e(string.format("require('lumen.cli').parse({%s}, {epochs = 30, data = 'mnist', paper = false})",
      args))
  end

  it("prints each option's default and what it does with --help", function()
    local out = lumen_e("require('lumen.cli').parse({'--help'}, {epochs = 30, paper = false}, 'usage: x', "
      .. "{epochs = 'passes over the data'})")
    eq(out, "usage: x\n"
      .. string.format("%-40s %s\n", "  --epochs       (default 30)", "passes over the data")
      .. "  --paper        (default false) (--paper or --no-paper)\nstatus 0\n")
    -- the main experiment says what every one of its options does
    local study = require 'lumen.introspect.study'
    local about = study.mnist_option_help()
    for k in pairs(study.mnist_defaults()) do truthy(about[k], "--" .. k .. " is described") end
    truthy(about.est_epochs:find("recording estimator", 1, true), about.est_epochs)
  end)

  it("refuses the experiments' wrong devices, option clashes and empty folders before any work", function()
    local root = io.popen("pwd"):read("l") -- (PWD need not be the working folder under ctest)
    local function experiment(args)
      local script, rest = args:match("^(%S+)%s*(.*)$")
      local p = io.popen(string.format("cd /tmp && '%s/lumen' '%s/experiments/%s' %s 2>&1; echo \"status $?\"",
        (build:sub(1, 1) == "/" and build or root .. "/" .. build), root, script, rest))
      local out = p:read("a")
      p:close()
      return out
    end
    eq(experiment("fgsm_cifar10.lua --device quantum"),
      "option --device is one of cpu, cuda, got 'quantum' (see --help)\nstatus 2\n")
    eq(experiment("introspect_mnist.lua --paper --cycles 3"), "--paper sets the schedules (--paper-period, "
      .. "--paper-cycles, --paper-models-lr): leave out --cycles (see --help)\nstatus 2\n")
    eq(experiment("custom_layer.lua --bogus 1"), "unknown option --bogus (see --help)\nstatus 2\n")
    -- refused before the classifier trains, not by the autoencoder or the schedule after
    eq(experiment("introspect_mnist.lua --bandwidths 1,-1"), "option --bandwidths is numbers separated by commas, "
      .. "each a number > 0, got '1,-1' (see --help)\nstatus 2\n")
    -- --out is the run in --from however spelt (relative to /tmp, where they run; with ./, .. or a slash)
    local from = os.tmpname()
    os.remove(from)
    lm.mkdir(from)
    local rel = ".." .. from -- from /tmp, whatever the folder holding it
    for _, script in ipairs{"analyses_mnist.lua", "explain_mnist.lua"} do
      for _, out in ipairs{from .. "/.", from .. "/", rel, "./" .. rel .. "/../" .. rel} do
        local said = experiment(string.format("%s --from %s --out %s", script, from, out))
        truthy(said:find("^%-%-out " .. out:gsub("%p", "%%%0") .. " is the run in %-%-from: its ")
          and said:find("status 2\n$"), script .. " --out " .. out .. ": " .. said)
      end
    end
    -- error_scores_mnist writes into the run: not over or beside its own files
    for _, name in ipairs{"classifier", "autoencoder", "estimator"} do
      lm.write_file(from .. "/" .. name .. ".safetensors", "")
    end
    lm.write_file(from .. "/options.json", "{}")
    lm.write_file(from .. "/index.html", "")
    for name, file in pairs{options = "options.json", index = "index.html"} do
      eq(experiment(string.format("error_scores_mnist.lua --out %s --name %s", from, name)), string.format(
        "--name %s would write beside %s/%s, a file of the run: choose another name (see --help)\nstatus 2\n",
        name, from, file))
    end
    eq(experiment(string.format("error_scores_mnist.lua --out %s --name classifier_run/metrics", from)),
      "--name is a file name stem in --out, got 'classifier_run/metrics' (see --help)\nstatus 2\n")
    os.execute("rm -rf '" .. from .. "'")
    eq(experiment("introspect_mnist.lua --subset 100"), "option --subset needs 0 (all the images) or at least 128 "
      .. "(one batch), got 100 (see --help)\nstatus 2\n")
    eq(experiment("tour.lua --out ''"), "option --out needs a folder, got '' (see --help)\nstatus 2\n")
  end)

  it("refuses a mistake with a message and status 2, without a traceback", function()
    eq(run("'--paper=maybe'"), "option --paper is true or false (also yes/no, on/off, 1/0), got 'maybe' "
      .. "(see --help)\nstatus 2\n")
    eq(run("'--epochs', 'abc'"), "option --epochs needs a number, got 'abc' (see --help)\nstatus 2\n")
    eq(run("'--data', '--epochs', '5'"), "option --data needs a value, got the option '--epochs' (see --help)\n"
      .. "status 2\n")
    eq(run("'--epoch', '5'"), "unknown option --epoch (did you mean --epochs?) (see --help)\nstatus 2\n")
    eq(run("'5'"), "unexpected argument '5' (options look like --name value) (see --help)\nstatus 2\n")
    eq(run("'--zzzzzz', '5'"), "unknown option --zzzzzz (see --help)\nstatus 2\n")
  end)

  local function check(args, kinds)
    return lumen_e(string.format("local cli = require('lumen.cli'); "
      .. "local o = cli.parse({%s}, {cycles = 3, eps = 0.5, mode = 'auto', bw = '1,10'}); "
      .. "cli.check(o, {%s}); cli.numbers(o, 'bw'); print('ok')", args, kinds))
  end

  it("checks ranges and lists before any work, naming the option", function()
    local kinds = "cycles = 'count', eps = 'nonnegative', mode = {'auto', 'file'}"
    eq(check("", kinds), "ok\nstatus 0\n")
    eq(check("'--cycles', '-3'", kinds), "option --cycles needs an integer >= 1, got -3 (see --help)\nstatus 2\n")
    eq(check("'--cycles', '2.5'", kinds), "option --cycles needs an integer >= 1, got 2.5 (see --help)\nstatus 2\n")
    eq(check("'--eps', '-1'", kinds), "option --eps needs a number >= 0, got -1 (see --help)\nstatus 2\n")
    eq(check("'--mode', 'bogus'", kinds), "option --mode is one of auto, file, got 'bogus' (see --help)\nstatus 2\n")
    eq(check("'--bw', '1;10'", kinds),
      "option --bw is numbers separated by commas, got '1;10' (see --help)\nstatus 2\n")
    eq(check("'--bw', '1,x,10'", kinds), "option --bw is numbers separated by commas, got '1,x,10' (see --help)\n"
      .. "status 2\n")
  end)
end)
