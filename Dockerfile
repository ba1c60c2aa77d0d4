# nas on CPU: docker build -t nas . && docker run --rm -v "$PWD/outputs:/app/outputs" nas
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app

# torch first, pinned, from the CPU index: an unpinned torch pulls a multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml README.md ./
COPY nas ./nas
COPY conf ./conf
COPY data ./data
RUN pip install -e . && useradd --uid 1000 --create-home nas && mkdir -p outputs && chown 1000:1000 outputs

USER 1000:1000
ENTRYPOINT ["nas"]
