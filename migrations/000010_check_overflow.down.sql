DROP TABLE check_overflow;
