# The image every cloud step runs in: Vertex AI Pipelines steps and Dataflow workers alike.
#   make image IMAGE=us-central1-docker.pkg.dev/PROJECT/marketing-ml/tfx:latest && docker push "$IMAGE"
#
# Base: the official TFX 1.16.0 image (Python 3.10 under /opt/conda, TFX and TensorFlow installed, and
# ENTRYPOINT /opt/apache/beam/boot, the Beam worker launcher Dataflow Runner v2 starts).
FROM tensorflow/tfx:1.16.0

# The base image carries the Beam worker launcher of TFX's own Beam; Dataflow needs the launcher, the
# worker SDK and the SDK that submitted the job to be one version: the one in requirements.lock.
COPY --from=apache/beam_python3.10_sdk:2.74.0 /opt/apache/beam /opt/apache/beam

# Keras 2 for TFT, TFMA and our Keras-2 SavedModels, in every process the image starts.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONHASHSEED=0 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/marketing-ml
# Exactly the locked versions the launcher uses, without resolution.
COPY requirements.lock ./
RUN python -m pip install --no-deps -r requirements.lock

# The project itself, installed (not editable), so every component finds module code by dotted path
# (modules.clv.run_fn, pipelines.components.examples_builder.Executor, ...).
COPY setup.py ./
COPY pipelines ./pipelines
COPY modules ./modules
RUN python -m pip install --no-deps . \
 && cd / && python -c "import modules.clv, pipelines.components.examples_builder, pipelines.clv.btyd"

WORKDIR /
ENTRYPOINT ["/opt/apache/beam/boot"]
