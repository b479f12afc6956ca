"""``alexnet-tvm serve``: built artifacts behind the Open Inference Protocol (KServe v2).

The server runs on the thin runtime (TVM runtime, numpy, pillow, aiohttp; never torch), so
it deploys where ``pull`` does. One module per concern:

* ``errors``   - the HTTP answers a single request can earn (400, 404, 413, 503, ...);
* ``models``   - artifacts of one model grouped under one name, and running any rows on them;
* ``protocol`` - the OIP JSON shapes and the binary tensor extension (decode and encode);
* ``batcher``  - dynamic batching off the event loop, with a bounded queue;
* ``classify`` - the image convenience endpoint (decode, preprocess, top-k);
* ``limits``   - the limits and the bind/token rule;
* ``metrics``  - Prometheus counters and histograms;
* ``routes`` / ``app`` - the aiohttp handlers, middlewares and the start/drain life cycle;
* ``process``  - a server as a child process (serve-bench and tests);
* ``bench``    - ``serve-bench``, a bounded load run against the bare artifact.
"""
