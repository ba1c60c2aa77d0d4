# nas on CPU.
#   docker build -t nas .
#   docker run --rm -v "$PWD/outputs:/app/outputs" nas [overrides ...]
# The default command is the default search (`nas`); its MLflow store (sqlite:///outputs/mlflow.db)
# and run folders (outputs/runs/...) resolve against the working directory /app, so they land in
# the /app/outputs volume. The container runs as uid 1000: the mounted folder must be writable by it.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
WORKDIR /app

# The Makefile's set-up, in its order: torch first and pinned, then the package (editable).
# torch comes from PyTorch's CPU index: PyPI's Linux wheel is the multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml README.md ./
COPY nas ./nas
COPY conf ./conf
COPY data ./data
RUN pip install -e . \
    && useradd --uid 1000 --user-group --create-home --shell /usr/sbin/nologin nas \
    && mkdir -p /app/outputs \
    && chown 1000:1000 /app/outputs

USER 1000:1000
VOLUME ["/app/outputs"]
ENTRYPOINT ["nas"]
CMD []
