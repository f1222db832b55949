"""Labels in and out: labelling-tool formats (Label Studio, CVAT, COCO, YOLO) and the import/export round trip."""
