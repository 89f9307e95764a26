# One image for the operator and every stage Job. Non-root; works with a read-only root
# filesystem (everything writable lives under /tmp, an emptyDir in the pods).
#   docker build -t framesift:cpu --build-arg TORCH_INDEX_URL=<a CPU wheel index> .
#   docker build -t framesift:cuda .            (PyPI's default torch wheels carry CUDA)
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim AS build
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
# framesift/jobs and framesift/operator are links to these two folders
COPY framesift ./framesift
COPY operator ./operator
COPY jobs ./jobs
RUN python -m venv /opt/framesift \
 && if [ -n "$TORCH_INDEX_URL" ]; then \
      /opt/framesift/bin/pip install --index-url "$TORCH_INDEX_URL" torch torchvision; \
    else \
      /opt/framesift/bin/pip install -c constraints.txt torch torchvision; \
    fi \
 && /opt/framesift/bin/pip install -c constraints.txt . \
 && /opt/framesift/bin/pip uninstall -y opencv-python || true \
 && /opt/framesift/bin/pip install --force-reinstall --no-deps opencv-python-headless

FROM python:${PYTHON_VERSION}-slim
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin framesift
COPY --from=build /opt/framesift /opt/framesift
ENV PATH=/opt/framesift/bin:$PATH \
    HOME=/tmp \
    FRAMESIFT_CACHE=/tmp/framesift \
    YOLO_CONFIG_DIR=/tmp/ultralytics \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["framesift"]
CMD ["--help"]
