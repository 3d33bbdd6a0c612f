# artds app image: `docker build -t artds . && docker run -p 8000:8000 artds`
# Serves the app on 0.0.0.0:8000 as a non-root user. Models, protocols and example data are baked
# in; nothing is downloaded at run time. Several replicas can run behind a load balancer with
# sticky sessions (Shiny keeps one websocket per session).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/tmp/numba

RUN groupadd --system artds && useradd --system --gid artds --home-dir /app --shell /usr/sbin/nologin artds

WORKDIR /app

# The CPU build of torch first, from PyTorch's CPU wheel index, so that the pinned torch==2.13.0
# below is already satisfied and no CUDA packages are pulled.
COPY constraints.txt pyproject.toml README.md ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY engine ./engine
COPY app ./app
COPY assets ./assets
COPY models ./models
RUN pip install -c constraints.txt -e . && mkdir -p /app/var && chown -R artds:artds /app

USER artds
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

CMD ["artds", "serve", "--host", "0.0.0.0", "--port", "8000"]
