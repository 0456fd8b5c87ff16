# Copy to instance/config.py to override defaults on this machine. Environment variables
# (DATABASE_URL, SECRET_KEY, REFERRALS_<NAME>) override this file in turn.

# SQLALCHEMY_DATABASE_URI = "postgresql+psycopg://referrals@127.0.0.1:5432/referrals"
# SECRET_KEY = "a long random string, the same for every worker"
# ENV = "production"
# SERVICE_NAME = "Severnvale Arts on Prescription"
# SESSION_IDLE_TIMEOUT = datetime.timedelta(minutes=30)
