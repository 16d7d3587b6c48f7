DROP TABLE IF EXISTS callback_deliveries;
