# dropserve image: the package in a virtual environment, the default models, nothing else.
#
#   docker build -t dropserve:latest .
#   docker run --rm -p 8000:8000 dropserve:latest
#
# torch comes from TORCH_INDEX_URL at the version pinned in constraints.txt. The default, PyTorch's
# CPU index, gives a small CPU-only image. For a CUDA image (the compose `gpu` profile) point it
# at an index with CUDA builds of that version, e.g.
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 -t dropserve:cuda .
# (PyPI itself, https://pypi.org/simple, also serves CUDA builds of torch for Linux.)
# DROPSERVE_EXTRAS adds optional dependency groups; the KubeRay image (deploy/ray/) has Ray Serve:
#   docker build --build-arg DROPSERVE_EXTRAS=ray -t dropserve:ray .

FROM python:3.11-slim AS builder

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG DROPSERVE_EXTRAS=""

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src

# torch first, from its own index only, so that the PyPI install below finds the pin
# (torch==2.13.0, which 2.13.0+cpu satisfies) already met and never fetches the CUDA wheel.
COPY constraints.txt ./
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" -c constraints.txt torch

COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install --no-cache-dir -c constraints.txt ".${DROPSERVE_EXTRAS:+[${DROPSERVE_EXTRAS}]}" \
    && python -c "import service, torch; print('torch', torch.__version__)"


FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="dropserve" \
      org.opencontainers.image.description="Dropout-trained MLPs over HTTP: ONNX predictions and MC-dropout uncertainty." \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, unprivileged uid/gid (the compose file runs as 10001:10001 too); no home, no shell.
RUN groupadd --system --gid 10001 dropserve \
    && useradd --system --uid 10001 --gid dropserve --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin dropserve

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    DROPSERVE_MODELS_DIR=/models \
    DROPSERVE_HOST=0.0.0.0 \
    DROPSERVE_LOG_FORMAT=json

COPY --from=builder /opt/venv /opt/venv
# Default models, owned by root: the service user can read them but not change them.
COPY models /models

USER 10001:10001
WORKDIR /tmp

EXPOSE 8000

# Ready, not just live: 503 until the models are loaded. python's urllib because slim has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4)"]

CMD ["dropserve", "serve", "--host", "0.0.0.0", "--port", "8000", "--models-dir", "/models"]
