-- What the "On your model" snippets of docs/analyses/ assume, made small:
-- Net1 trained briefly on the generated MNIST files (tests/helpers/fake_mnist.lua),
-- its recordings, an InfoVAE and an estimator, and the names the pages use.
-- Globals here become the page's environment (tests/docs/run_page.lua).
local lm = require 'lumen'
lm.manual_seed(1)
I = lm.introspect
A = require 'lumen.introspect.analyses'
local d = lm.data.mnist()
train, test = d.train, d.test
net = lm.models.net1()
lm.train{model = net, optimizer = lm.optim.Adam(net:parameters()), train = train, epochs = 2, loss = "mse",
  quiet = true}
recorder = I.Recorder(net)
local Y_train
H_train, Y_train = recorder:record_set(train.x)
local H_test
H_test, outputs = recorder:record_set(test.x)
layer_sizes = recorder.layer_sizes
vae = I.InfoVAE{inputs = H_train:size(2), mmd_weight = 500, bw = {0.1, 1, 10, 100, 1000}}
I.fit_autoencoder(vae, H_train, {epochs = 2})
Z_train, Z_test = vae:encode_all(H_train), vae:encode_all(H_test)
est = I.Estimator()
I.fit_estimator(est, Z_train, I.log_errors(Y_train, train.y), {epochs = 2})
Eh = A.class_means(H_train, train.y, 10)
orders = A.sort_units(Eh, layer_sizes)
x = test.x:narrow(1, 1, 1)                       -- one input [1, 784]
target = test.y[1] % 10 + 1                      -- another class
confidences = (-I.estimate(est, Z_test)):totable()
correct = {}
for i, v in ipairs(outputs:argmax(2):eq(test.y):totable()) do correct[i] = v == 1 end
fig = lm.plot.figure{width = 600, height = 400}
ax = fig:axes{rect = {60, 40, 500, 300}}
top = H_test:max()
